"""Files the app ships with, found through the installed ``resources`` package (importlib.resources), so
they are found in a checkout, an editable install and an installed wheel alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DISTRIBUTION = "digit-studio"  # pyproject's name: the version and the installed manual are read by it
RESOURCES = Path(str(resources.files("resources")))
PROJECT_ROOT = RESOURCES.parent  # a checkout's root (README.md, docs/); site-packages in an install


def shipped(*parts: str) -> Path:
    """A file of the ``resources`` package: the bundled models, the icon, the MNIST sample."""
    return RESOURCES.joinpath(*parts)
