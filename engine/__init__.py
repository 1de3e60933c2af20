"""Digit Studio's engine: everything that computes, nothing that shows.

The GUI (``gui/``) and the command line (``engine/cli.py``) are two front ends over the same calls here.
No module in this package imports Qt, pyqtgraph or ``gui``; a test enforces it, so the engine can run
on a headless server.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("digit-studio")  # pyproject.toml's, the one place it is written
except _metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
