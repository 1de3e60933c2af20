"""Digit Studio launcher: no arguments opens the app; a subcommand runs the headless command line.

python main.py                      # the desktop app
python main.py train --epochs 3     # the CLI (see python main.py --help)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args:
            from engine.cli import main as cli_main

            return cli_main(args)
        from gui.app import run

        return run()
    except KeyboardInterrupt:  # Ctrl-C while PyTorch or Qt is still being imported
        print("digit-studio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
