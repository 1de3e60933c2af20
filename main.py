"""Digit Studio launcher: no arguments opens the app; a subcommand runs the headless command line.

    python main.py                      # the desktop app
    python main.py train --epochs 3     # the CLI (see python main.py --help)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        from engine.cli import main as cli_main

        return cli_main(args)
    from gui.app import run

    return run()


if __name__ == "__main__":
    sys.exit(main())
