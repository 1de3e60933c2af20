"""Digit Studio's engine: everything that computes, nothing that shows.

The GUI (``gui/``) and the command line (``engine/cli.py``) are two front ends over the same calls here.
No module in this package imports Qt, pyqtgraph or ``gui``; a test enforces it, so the engine can run
on a headless server.
"""

__version__ = "0.1.0"
