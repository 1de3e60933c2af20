"""Writing Qt images to files the way the rest of the app writes files: atomically, failures raised."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QImage, QPixmap

from engine.files import atomic_write


def save_png(image: QImage | QPixmap, path: Path) -> Path:
    """Write ``image`` as a PNG file atomically (engine.files.atomic_write); OSError on failure.

    ``QImage.save`` only returns False, and writing in place would leave a truncated file under the
    old name when the disk fills."""

    def write(temporary: str) -> None:
        if not image.save(temporary, "PNG"):
            raise OSError(f"Qt could not write a PNG image to {temporary}")

    return atomic_write(path, write)
