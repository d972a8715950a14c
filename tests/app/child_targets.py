"""Functions run in a child process by tests/app/test_subprocess_job.py (no Qt imported here)."""

from __future__ import annotations

import os
import time
from typing import Any

from engine.errors import MediaError
from engine.runtime.jobs import Progress


def count(n: int, progress: Any = None, cancel: Any = None) -> dict[str, int]:
    for i in range(n):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(Progress("count", i + 1, n))
        time.sleep(0.01)
    return {"n": n, "pid": os.getpid()}


def fail(path: str, progress: Any = None, cancel: Any = None) -> None:
    raise MediaError("cannot decode this file", path=path, hint="re-encode it")


def forever(progress: Any = None, cancel: Any = None) -> None:
    while True:
        cancel.raise_if_cancelled()
        progress(Progress("waiting", 0, 1))
        time.sleep(0.02)


def die(progress: Any = None, cancel: Any = None) -> None:
    os._exit(3)
