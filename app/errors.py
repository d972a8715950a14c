"""Errors shown to people: a plain message (what failed, which file, what to do), the details
expandable, everything logged. No traceback ever reaches the user directly."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from engine.errors import LipdubError

log = logging.getLogger(__name__)


def describe(exc: BaseException, action: str) -> tuple[str, str, str]:
    """(title line, human text, details) for an exception raised while doing ``action``."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, LipdubError):
        what = exc.message
        parts = [f"{action} failed: {what}"]
        if exc.path is not None:
            parts.append(f"File: {exc.path}")
        if exc.hint:
            parts.append(f"What to do: {exc.hint}")
        return f"{action} failed", "\n\n".join(parts), details
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        where = getattr(exc, "filename", None)
        text = f"{action} failed: {exc.strerror or exc}."
        if where:
            text += f"\n\nFile: {where}"
        text += "\n\nWhat to do: check that the file exists and that you may read and write it."
        return f"{action} failed", text, details
    if isinstance(exc, MemoryError):
        return (
            f"{action} failed",
            f"{action} ran out of memory.\n\nWhat to do: close other programs or use a smaller video.",
            details,
        )
    text = (
        f"{action} failed because of an unexpected problem in Lipdub Studio ({type(exc).__name__}: {exc}).\n\n"
        "What to do: try again; if it happens again, send the log file (Help > Open log folder) with a "
        "description of what you did."
    )
    return f"{action} failed", text, details


def error_box(parent: QWidget | None, exc: BaseException, action: str) -> QMessageBox:
    """A non-modal-safe message box for ``exc``; the caller shows it (``open()`` or ``exec()``)."""
    title, text, details = describe(exc, action)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(text)
    box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    return box


def show_error(parent: QWidget | None, exc: BaseException, action: str) -> QMessageBox:
    """Log ``exc`` and show it in a window-modal box (non-blocking). Returns the box."""
    if isinstance(exc, LipdubError):
        log.warning("%s failed: %s", action, exc.user_text())
    else:
        log.error("%s failed", action, exc_info=exc)
    box = error_box(parent, exc, action)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


_installed = False


def install_excepthook() -> None:
    """Route uncaught exceptions (including ones raised in Qt slots) to the log and a message box."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        exc.__traceback__ = tb
        log.critical("uncaught exception", exc_info=(kind, exc, tb))
        app = QApplication.instance()
        if app is None:
            return
        try:
            parent = QApplication.activeWindow()
            show_error(parent, exc, "An operation")
        except Exception:  # the hook must never raise
            log.exception("could not show the error dialog")

    sys.excepthook = hook
