"""Autosaved checkpoints: one file per training run in the user data folder, the newest kept.

Every run the app starts writes its last completed epoch to a file of its own, so a crash or a closed
window never loses more than an epoch. Without a limit the folder grew by a file a run (about 1 MB for
the default model) for as long as the app was used; the oldest are deleted when a run starts, never
the checkpoint in use or one on the Open recent list.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection
from pathlib import Path

MAX_KEPT = 20


def autosave_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("digit-studio", appauthor=False)) / "autosave"


def new_autosave_path(folder: Path, model: str, dataset: str, now: _dt.datetime | None = None) -> Path:
    """``model-dataset-YYYYmmdd-HHMMSS.pt`` in ``folder``, with ``-2``, ``-3``... for runs started in the
    same second, so that no run writes over another's file."""
    stem = f"{model}-{dataset}-{(now or _dt.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    path, n = folder / f"{stem}.pt", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.pt"
    return path


def prune(folder: Path, keep: int = MAX_KEPT, protect: Collection[Path] = ()) -> list[Path]:
    """Delete all but the ``keep`` newest autosaves in ``folder`` (by modification time), never one in
    ``protect``; returns the deleted. A file that cannot be deleted is left, silently: this is tidying."""
    kept = {Path(p).resolve() for p in protect}

    def modified(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # gone meanwhile: counted as new, so left alone
            return float("inf")

    files = sorted(folder.glob("*.pt"), key=modified, reverse=True)
    deleted = []
    for path in files[keep:]:
        if path.resolve() in kept:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        deleted.append(path)
    return deleted


def autosaved_runs(folder: Path, limit: int = MAX_KEPT) -> list[tuple[Path, str]]:
    """The autosaves in ``folder``, newest first, each with when it was written (for a menu)."""
    found = []
    try:
        for path in folder.glob("*.pt"):
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:
                continue
    except OSError:
        return []
    found.sort(reverse=True)
    return [(path, _dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")) for mtime, path in found[:limit]]
