"""The app's settings: one object with a typed field per setting, each key written once, here.

``AppSettings`` wraps a ``QSettings`` store (the user's, or a file a test gives). Every field reads back
in the type it is declared with, whatever the platform's store hands back (INI files return a one-item
list as a plain string, booleans as "true"/"false", an empty list as None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

T = TypeVar("T")


class Setting(Generic[T]):
    """A field of :class:`AppSettings`: ``key`` in the store, ``default`` when it holds nothing usable."""

    def __init__(self, key: str, default: T) -> None:
        self.key = key
        self.default = default

    def __get__(self, settings: AppSettings | None, owner: type) -> Any:
        if settings is None:
            return self
        value = settings.store.value(self.key)
        return self.default if value is None else self.decode(value)

    def __set__(self, settings: AppSettings, value: T) -> None:
        settings.store.setValue(self.key, self.encode(value))

    def decode(self, value: Any) -> T:
        return value

    def encode(self, value: T) -> Any:
        return value


class Text(Setting[str]):
    def decode(self, value: Any) -> str:
        return str(value) if isinstance(value, str | int | float) else self.default


class Flag(Setting[bool]):
    def decode(self, value: Any) -> bool:
        return value if isinstance(value, bool) else str(value).lower() == "true"

    def encode(self, value: bool) -> str:
        return "true" if value else "false"


class Folder(Setting[Path]):
    """A folder a file dialog starts in (the user's home until one is chosen)."""

    def __init__(self, key: str) -> None:
        super().__init__(key, Path.home())

    def decode(self, value: Any) -> Path:
        return Path(value) if isinstance(value, str) and value else self.default

    def encode(self, value: Path) -> str:
        return str(value)


class TextList(Setting[list[str]]):
    def __init__(self, key: str) -> None:
        super().__init__(key, [])

    def __get__(self, settings: AppSettings | None, owner: type) -> Any:
        value = super().__get__(settings, owner)
        return list(value) if settings is not None else value

    def decode(self, value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list | tuple) else []


class Mapping(Setting[dict[str, Any]]):
    def __init__(self, key: str) -> None:
        super().__init__(key, {})

    def decode(self, value: Any) -> dict[str, Any]:
        return dict(value) if isinstance(value, dict) else {}


class Bytes(Setting[QByteArray]):
    def __init__(self, key: str) -> None:
        super().__init__(key, QByteArray())

    def decode(self, value: Any) -> QByteArray:
        return value if isinstance(value, QByteArray) else QByteArray()


class AppSettings:
    """Every setting the app keeps between sessions."""

    geometry = Bytes("window/geometry")
    wide_canvas = Flag("canvas/wide", False)
    low_priority = Flag("training/low_priority", False)
    tensorboard_dir = Text("training/tensorboard", "")  # "" for no TensorBoard logs
    training_config = Mapping("training/config")
    device = Text("training/device", "")
    dataset = Text("data/dataset", "")
    data_folder = Text("data/folder", "")  # "" when a named data set is chosen
    data_folders = TextList("data/folders")
    checkpoints_dir = Folder("paths/checkpoints")
    data_dir = Folder("paths/data")
    images_dir = Folder("paths/images")
    exports_dir = Folder("paths/exports")
    recent_checkpoints = TextList("recent/checkpoints")
    unsaved_autosave = Text("session/unsaved_autosave", "")  # a model never saved, offered at the next launch

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("DigitStudio", "Digit Studio")

    def forget(self, field: str) -> None:
        """Remove a setting, so that it reads as its default."""
        self.store.remove(getattr(type(self), field).key)

    def sync(self) -> None:
        self.store.sync()
