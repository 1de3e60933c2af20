from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.helpers import write_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the cache, settings and autosaves of tests away from the real user's folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("DIGIT_STUDIO_DATA", raising=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320 + 100 image data set in gzip IDX files (read-only by convention: copy before changing)."""
    return write_dataset(tmp_path_factory.mktemp("tiny") / "mnist")


@pytest.fixture(scope="session")
def tiny_dataset(tiny_data: Path):
    from engine.data import load_folder

    return load_folder(tiny_data)
