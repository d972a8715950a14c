from __future__ import annotations

import threading
import time

import pytest

from app.workers import LatestOnly, WorkerPool
from engine.errors import Cancelled, MediaError
from engine.runtime.jobs import Progress


@pytest.fixture
def pool(qapp):  # type: ignore[no-untyped-def]
    p = WorkerPool(2)
    yield p
    p.shutdown()
    p.deleteLater()


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, pool) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, object, bool]] = []
    gui = threading.current_thread()

    def job(progress, cancel):  # type: ignore[no-untyped-def]
        for i in range(3):
            progress(Progress("step", i + 1, 3))
            time.sleep(0.06)
        return threading.current_thread() is not gui

    w = pool.start(job, "t",
                   on_progress=lambda p: seen.append(("progress", p.done, threading.current_thread() is gui)),
                   on_result=lambda r: seen.append(("result", r, threading.current_thread() is gui)))
    qtbot.waitUntil(lambda: not pool.running, timeout=10000)  # finished has reached the GUI thread
    assert w.done.is_set()
    assert ("result", True, True) in seen  # ran off the GUI thread, delivered on it
    progress = [s for s in seen if s[0] == "progress"]
    assert progress and all(s[2] for s in progress)
    assert progress[-1][1] == 3


def test_error_and_cancel_are_reported_separately(qtbot, pool) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    cancelled: list[bool] = []

    def fails(progress, cancel):  # type: ignore[no-untyped-def]
        raise MediaError("cannot decode", path="/x.mp4")

    pool.start(fails, "fail", on_error=errors.append, on_cancelled=lambda: cancelled.append(True))
    qtbot.waitUntil(lambda: not pool.running, timeout=10000)
    assert isinstance(errors[0], MediaError) and not cancelled

    started = threading.Event()

    def long_job(progress, cancel):  # type: ignore[no-untyped-def]
        started.set()
        for _ in range(500):
            cancel.raise_if_cancelled()
            time.sleep(0.01)
        return "finished"

    results: list[object] = []
    w = pool.start(long_job, "long", on_result=results.append, on_error=errors.append,
                   on_cancelled=lambda: cancelled.append(True))
    assert started.wait(5)
    w.cancel()
    qtbot.waitUntil(lambda: not pool.running, timeout=10000)
    assert cancelled == [True] and results == [] and len(errors) == 1
    assert issubclass(Cancelled, Exception)


def test_latest_only_runs_the_newest_request_and_drops_the_rest(qtbot, pool) -> None:  # type: ignore[no-untyped-def]
    ran: list[int] = []

    def make_job(key: int):  # type: ignore[no-untyped-def]
        def job(progress, cancel):  # type: ignore[no-untyped-def]
            time.sleep(0.05)
            ran.append(key)
            return key * 10

        return job

    latest = LatestOnly(pool, make_job)
    delivered: list[tuple[int, int]] = []
    latest.result.connect(lambda rid, key, value: delivered.append((key, value)))
    ids = [latest.request(k) for k in range(10)]  # no event processing in between: a burst of scrubbing
    qtbot.waitUntil(lambda: not latest.busy, timeout=5000)
    assert delivered == [(9, 90)], "only the newest request's result reaches the view"
    assert ids == sorted(ids) and latest.latest_id == ids[-1]
    # The first request may have started before it was superseded (then it is cancelled); the eight
    # that only waited never run at all.
    assert ran[-1] == 9 and set(ran) <= {0, 9}, f"superseded pending requests ran: {ran}"
    assert latest.dropped == 9
