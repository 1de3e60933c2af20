"""Reading QSettings values back in the type they were written with."""

from __future__ import annotations

from typing import Any


def settings_list(settings: Any, key: str) -> list[str]:
    """A list of strings written with ``setValue``: INI files and some platforms hand back a one-item list
    as a plain string, and an empty one as None."""
    value = settings.value(key, [])
    if isinstance(value, str):
        return [value]
    return list(value or [])
