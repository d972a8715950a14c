"""The ``lipdub`` command line: ``lipdub probe | analyse | render | eval ...``.

Each subcommand lives in its own module here and defines ``add_parser(subparsers)``, which registers
the subcommand and sets ``func(args) -> int`` as its handler. Exit codes are those of
:mod:`engine.errors`: 0 ok, 1 failed, 2 usage, 3 bad input, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from engine import __version__
from engine.errors import EXIT_CANCELLED, EXIT_FAILED, Cancelled, LipdubError

SUBCOMMAND_MODULES = [
    "engine.cli.probe",
    "engine.cli.analyse",
    "engine.cli.render",
    "engine.cli.eval",
    "engine.cli.train_net",
]

log = logging.getLogger("lipdub.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lipdub", description="Lipdub Studio: lip-sync dubbed video.")
    parser.add_argument("--version", action="version", version=f"lipdub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.runtime.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    log_path = setup_logging(to_stderr=False)
    try:
        return int(args.func(args) or 0)
    except LipdubError as exc:
        log.warning("%s", exc.user_text())
        print(f"lipdub: error: {exc.user_text()}", file=sys.stderr)
        return exc.exit_code
    except (Cancelled, KeyboardInterrupt):
        print("lipdub: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # the last line of defence: no traceback for users, all of it in the log
        log.exception("unexpected failure")
        print(f"lipdub: internal error: {exc}. Details are in {log_path}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
