"""Entry point of the desktop app (``lipdub-studio``; also the PyInstaller spec's script).

Opens the window before anything heavy loads: no torch at import time (a test checks it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("app")


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lipdub-studio", description="Lipdub Studio desktop app")
    parser.add_argument("files", nargs="*", help="a project, a video and/or dubbed audio files to open")
    parser.add_argument("--no-restore", action="store_true", help="do not offer to restore an autosave")
    parser.add_argument("--quit-after", type=float, default=None, metavar="SECONDS",
                        help="close the window after SECONDS (smoke tests of packaged builds)")
    return parser.parse_args(list(argv))


def offer_restore(window: object, info: dict[str, object] | None) -> bool:
    """If the last session did not close cleanly and left an autosave (``info``), offer to restore it."""
    from PySide6.QtWidgets import QMessageBox, QWidget

    from app.document import discard_autosave

    if info is None:
        return False
    original = info.get("project_path")
    where = f" of “{Path(str(original)).name}”" if original else ""
    parent = window if isinstance(window, QWidget) else None
    box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved work?",
                      f"Lipdub Studio did not close normally last time. An autosaved copy{where} is available.\n\n"
                      "Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.Yes)
    if box.exec() == QMessageBox.StandardButton.Yes:
        return bool(window.restore_autosave(info["autosave"], original))  # type: ignore[attr-defined]
    discard_autosave()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # frozen builds: child processes (face analysis) start here
    args = _parse(sys.argv[1:] if argv is None else argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.errors import install_excepthook
    from app.resources import apply_theme, icon
    from app.settings import APP, ORG, AppSettings
    from engine.runtime.logs import setup_logging

    settings = AppSettings.load()
    settings.apply_to_environment()
    log_path = setup_logging()
    log.info("Lipdub Studio starting; log file %s", log_path)

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setWindowIcon(icon("app"))
    apply_theme(app)
    install_excepthook()

    from app.document import unclean_session
    from app.mainwindow import MainWindow

    # Read what the last session left before this one writes its own session marker.
    leftover = None if args.no_restore or args.quit_after is not None else unclean_session()
    window = MainWindow(settings)
    window.show()
    restored = offer_restore(window, leftover)
    if not restored:
        window.doc.write_session_marker()
    if args.files:
        window.open_paths([Path(f).absolute() for f in args.files])
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    code = app.exec()
    log.info("Lipdub Studio closed (%s)", code)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
