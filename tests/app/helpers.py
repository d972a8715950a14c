"""Small helpers shared by the app tests."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def qimage_to_rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def wait_idle(qtbot, window, timeout: int = 60000) -> None:  # type: ignore[no-untyped-def]
    """Wait until the window's background jobs (and the preview) have finished."""
    qtbot.waitUntil(lambda: not window.busy and not window.preview_ctl.busy, timeout=timeout)


def open_video(qtbot, window, path, timeout: int = 60000) -> None:  # type: ignore[no-untyped-def]
    window.open_video(path)
    qtbot.waitUntil(lambda: window.session.video is not None and window.preview.pair is not None, timeout=timeout)
    wait_idle(qtbot, window, timeout)
