"""A run's record: every logged step loss and every epoch's metrics; a resumed run appends to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Every logged step loss and every epoch's metrics; a resumed run appends to it."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "losses": list(self.losses), "epochs": [dict(e) for e in self.epochs]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(
            list(values.get("steps", [])), list(values.get("losses", [])), [dict(e) for e in values.get("epochs", [])]
        )
