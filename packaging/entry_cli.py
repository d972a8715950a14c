"""Frozen entry point of the ``lipdub`` executable: the same ``engine.cli:main`` as the installed
``lipdub`` command."""

from __future__ import annotations

import multiprocessing
import sys


def run() -> int:
    multiprocessing.freeze_support()
    from engine.cli import main

    return int(main() or 0)


if __name__ == "__main__":
    sys.exit(run())
