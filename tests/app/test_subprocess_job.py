"""Engine work in a child process (the face analysis runs this way so the GUI thread never waits on
the GIL): results, progress, errors, cancel and a crashed child all come back as in-process work would."""

from __future__ import annotations

import os
import threading

import pytest

from app.subprocess_job import ChildProcessError, run_in_subprocess
from engine.errors import Cancelled, MediaError
from engine.runtime.jobs import CancelToken


def test_result_and_progress_come_back() -> None:
    seen = []
    result = run_in_subprocess("tests.app.child_targets:count", {"n": 5}, seen.append)
    assert result["n"] == 5 and result["pid"] != os.getpid()
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].fraction == 1.0


def test_errors_keep_their_type_and_text() -> None:
    with pytest.raises(MediaError) as info:
        run_in_subprocess("tests.app.child_targets:fail", {"path": "/clips/a.mp4"})
    assert "cannot decode" in info.value.user_text() and "/clips/a.mp4" in info.value.user_text()


def test_cancel_stops_the_child() -> None:
    token = CancelToken()
    started = threading.Event()

    def progress(_p) -> None:  # type: ignore[no-untyped-def]
        started.set()
        token.cancel()

    with pytest.raises(Cancelled):
        run_in_subprocess("tests.app.child_targets:forever", {}, progress, token)
    assert started.is_set()


def test_a_crashed_child_is_an_error_not_a_hang() -> None:
    with pytest.raises(ChildProcessError) as info:
        run_in_subprocess("tests.app.child_targets:die", {}, what="The face analysis")
    assert "stopped unexpectedly" in info.value.user_text() and "exit code 3" in info.value.user_text()
