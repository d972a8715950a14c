"""The app's one background worker type, and the pool that runs it.

A :class:`Worker` runs a plain function ``fn(progress=..., cancel=...)`` on a pool thread. It reports
through Qt signals (started / progress / result / error / cancelled / finished) that are delivered on
the GUI thread because the signal object lives there. Cancelling sets an engine
:class:`~engine.runtime.CancelToken`, which the engine checks between steps; a function that raises
:class:`~engine.errors.Cancelled` ends with ``cancelled`` instead of ``error``.

:class:`LatestOnly` sits on top of it for work where only the newest request matters (the preview):
one job in flight, at most one pending; a new request replaces the pending one and cancels the one
in flight; each result carries its request id and stale ones are dropped.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import Cancelled
from engine.runtime.jobs import CancelToken, Progress

log = logging.getLogger(__name__)

JobFn = Callable[..., Any]
"""``fn(progress: ProgressFn, cancel: CancelToken) -> result``."""


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(object)  # engine.runtime.Progress
    result = Signal(object)
    error = Signal(object)  # the exception
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Runs ``fn(progress=..., cancel=...)`` once on a pool thread."""

    def __init__(self, fn: JobFn, name: str = "job", min_progress_interval_s: float = 0.05) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.name = name
        self.cancel_token = CancelToken()
        self.signals = WorkerSignals()
        self._min_interval = min_progress_interval_s
        self._last_progress = 0.0
        self.done = threading.Event()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def _progress(self, report: Progress) -> None:
        # Rate-limit here too so a chatty engine function cannot flood the GUI's event queue.
        now = time.monotonic()
        if now - self._last_progress < self._min_interval and report.fraction < 1.0:
            return
        self._last_progress = now
        self.signals.progress.emit(report)

    def run(self) -> None:
        threading.current_thread().name = f"worker:{self.name}"
        self.signals.started.emit()
        try:
            self.cancel_token.raise_if_cancelled()
            value = self.fn(progress=self._progress, cancel=self.cancel_token)
        except Cancelled:
            log.info("%s cancelled", self.name)
            self.signals.cancelled.emit()
        except BaseException as exc:
            log.error("%s failed", self.name, exc_info=exc)
            self.signals.error.emit(exc)
        else:
            if self.cancel_token.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.result.emit(value)
        finally:
            self.done.set()
            self.signals.finished.emit()


class WorkerPool(QObject):
    """Owns the thread pool and keeps every running worker alive until it has finished."""

    instances: weakref.WeakSet[WorkerPool] = weakref.WeakSet()  # for leak checks in tests

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        WorkerPool.instances.add(self)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.pool.setExpiryTimeout(2000)
        self._running: set[Worker] = set()
        self.closed = False

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        # Results queued before a shutdown must not reach views that are gone by the time they arrive.
        # A bound method of a Qt object that has been deleted meanwhile is skipped too.
        owner = getattr(fn, "__self__", None)

        def call(*args: Any) -> None:
            if self.closed or (isinstance(owner, QObject) and not shiboken6.isValid(owner)):
                return
            fn(*args)

        return call

    def start(
        self,
        fn: JobFn,
        name: str = "job",
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        priority: int = 0,
    ) -> Worker:
        worker = Worker(fn, name)
        sig = worker.signals
        if on_result is not None:
            sig.result.connect(self._guard(on_result))
        if on_error is not None:
            sig.error.connect(self._guard(on_error))
        if on_progress is not None:
            sig.progress.connect(self._guard(on_progress))
        if on_cancelled is not None:
            sig.cancelled.connect(self._guard(on_cancelled))
        if on_finished is not None:
            sig.finished.connect(self._guard(on_finished))
        sig.finished.connect(lambda w=worker: self._running.discard(w))
        self._running.add(worker)
        self.pool.start(worker, priority)
        return worker

    @property
    def running(self) -> list[Worker]:
        """Workers started and not yet finished as far as the GUI thread knows (their ``finished``
        signal not delivered yet): when this is empty, every result has been handled."""
        return list(self._running)

    def cancel_all(self) -> None:
        for worker in list(self._running):
            worker.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything, wait for the threads, and stop them. True when all stopped in time."""
        self.closed = True
        self.cancel_all()
        ok = self.pool.waitForDone(timeout_ms)
        self.pool.clear()
        self._running.clear()
        return bool(ok)


class LatestOnly(QObject):
    """Keeps only the newest request: one job in flight, at most one pending, stale results dropped.

    ``make_job(key)`` returns the job function for a request. ``result(request_id, key, value)`` is
    emitted only for the newest request; older results are counted in ``dropped``.
    """

    result = Signal(int, object, object)
    error = Signal(int, object, object)

    def __init__(self, pool: WorkerPool, make_job: Callable[[Any], JobFn], name: str = "latest") -> None:
        super().__init__(pool)
        self._pool = pool
        self._make_job = make_job
        self._name = name
        self._next_id = 0
        self._latest_id = 0
        self._pending: tuple[int, Any] | None = None
        self._in_flight: tuple[int, Worker] | None = None
        self.dropped = 0
        self.delivered = 0

    @property
    def latest_id(self) -> int:
        return self._latest_id

    @property
    def busy(self) -> bool:
        return self._in_flight is not None or self._pending is not None

    def request(self, key: Any) -> int:
        self._next_id += 1
        rid = self._next_id
        self._latest_id = rid
        if self._pending is not None:
            self.dropped += 1  # superseded before it started
        self._pending = (rid, key)
        if self._in_flight is not None:
            self._in_flight[1].cancel()
        else:
            self._launch()
        return rid

    def cancel(self) -> None:
        self._pending = None
        self._latest_id = self._next_id + 1  # nothing outstanding is current any more
        if self._in_flight is not None:
            self._in_flight[1].cancel()

    def _launch(self) -> None:
        if self._pending is None:
            return
        rid, key = self._pending
        self._pending = None
        fn = self._make_job(key)
        worker = self._pool.start(
            fn,
            f"{self._name}#{rid}",
            on_result=functools.partial(self._on_result, rid, key),
            on_error=functools.partial(self._on_error, rid, key),
            on_cancelled=self._on_cancelled,
            on_finished=functools.partial(self._on_finished, rid),
        )
        self._in_flight = (rid, worker)

    def _on_result(self, rid: int, key: Any, value: Any) -> None:
        if rid != self._latest_id:
            self.dropped += 1
            return
        self.delivered += 1
        self.result.emit(rid, key, value)

    def _on_cancelled(self) -> None:
        self.dropped += 1  # superseded while it ran

    def _on_error(self, rid: int, key: Any, exc: BaseException) -> None:
        if rid == self._latest_id:
            self.error.emit(rid, key, exc)

    def _on_finished(self, rid: int) -> None:
        if self._in_flight is not None and self._in_flight[0] == rid:
            self._in_flight = None
        self._launch()
