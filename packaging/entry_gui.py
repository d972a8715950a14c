"""Frozen entry point of the ``lipdub-studio`` executable: the same ``app.main:main`` as the installed
``lipdub-studio`` command. ``--smoke-test CLIP`` runs the headless check in :mod:`frozen_smoke` instead
(used by packaging/smoke_test.py against the built bundle)."""

from __future__ import annotations

import multiprocessing
import sys


def run() -> int:
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] in ("--smoke-test", "--bundle-check"):
        import frozen_smoke

        return frozen_smoke.main(sys.argv[1:])
    from app.main import main

    return int(main() or 0)


if __name__ == "__main__":
    sys.exit(run())
