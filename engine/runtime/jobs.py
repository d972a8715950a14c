"""Progress reporting and cancellation for long engine functions.

Long functions take ``progress`` (a callable) and ``cancel`` (a :class:`CancelToken`) as parameters;
nothing here is global. A progress callback receives a :class:`Progress` value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` units of ``stage``; ETA in seconds when known."""

    stage: str
    done: float
    total: float
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


ProgressFn = Callable[[Progress], None]


def null_progress(_: Progress) -> None:
    """A progress callback that ignores every report."""


class CancelToken:
    """A thread-safe cancel flag, checked between steps of long work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def check_cancel(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set; ``None`` never cancels."""
    if cancel is not None:
        cancel.raise_if_cancelled()


class ProgressReporter:
    """Turns counts into :class:`Progress` reports with an ETA, rate-limited to ``min_interval_s``."""

    def __init__(self, fn: ProgressFn | None, stage: str, total: float, min_interval_s: float = 0.1) -> None:
        self._fn = fn or null_progress
        self._stage = stage
        self._total = float(total)
        self._min_interval = min_interval_s
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, done: float, message: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._min_interval and done < self._total:
            return
        self._last = now
        elapsed = now - self._start
        eta = None
        if done > 0 and self._total > 0 and elapsed > 0.5:
            eta = elapsed / done * max(0.0, self._total - done)
        self._fn(Progress(self._stage, float(done), self._total, eta, message))

    def finish(self, message: str = "") -> None:
        self.update(self._total, message, force=True)
