"""Run an engine function in a child process, as the body of an ordinary :class:`~app.workers.Worker`.

Why: some engine steps hold Python's GIL for hundreds of milliseconds inside C extensions (face
detection and embedding), which would freeze the GUI thread of the same process however the work is
threaded. In a child process they cannot. The worker thread only relays: progress reports come back
through a queue, cancel goes out through an event, the result or the exception comes back pickled.

This module and the child's entry point import no Qt, so the child starts without PySide6.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import queue
import threading
import time
import traceback
from typing import Any

from engine.errors import Cancelled, LipdubError
from engine.runtime.jobs import CancelToken, Progress, ProgressFn

_POLL_S = 0.05


class ChildProcessError(LipdubError):
    """The background process ended without a result (it crashed or was killed)."""


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _child_main(target: str, kwargs: dict[str, Any], out: Any, cancel_flag: Any) -> None:
    token = CancelToken()

    # A shared flag polled here, not a multiprocessing.Event: setting an Event whose waiter has
    # exited blocks the setter forever.
    def watch_cancel() -> None:
        while not cancel_flag.value:
            time.sleep(_POLL_S)
        token.cancel()

    threading.Thread(target=watch_cancel, daemon=True, name="cancel-watch").start()

    def progress(p: Progress) -> None:
        out.put(("progress", (p.stage, p.done, p.total, p.eta_s, p.message)))

    try:
        from engine.runtime.logs import setup_logging

        setup_logging()
        value = _resolve(target)(progress=progress, cancel=token, **kwargs)
    except Cancelled:
        out.put(("cancelled", None))
    except BaseException as exc:
        try:
            out.put(("error", exc))
        except Exception:  # not picklable: send its text
            out.put(("error_text", "".join(traceback.format_exception(exc))))
    else:
        out.put(("result", value))


def run_in_subprocess(target: str, kwargs: dict[str, Any], progress: ProgressFn | None = None,
                      cancel: CancelToken | None = None, what: str = "the background job") -> Any:
    """Call ``module:function(progress=..., cancel=..., **kwargs)`` in a spawned child and return its
    result; its exceptions are raised here; Cancelled when ``cancel`` is set."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    cancel_flag = ctx.Value("b", 0, lock=False)
    proc = ctx.Process(target=_child_main, args=(target, kwargs, out, cancel_flag), daemon=True,
                       name=f"lipdub-{target.rpartition(':')[2]}")
    proc.start()
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                cancel_flag.value = 1
            try:
                kind, payload = out.get(timeout=_POLL_S)
            except queue.Empty:
                if not proc.is_alive():
                    try:  # the last message may have arrived just as the process ended
                        kind, payload = out.get(timeout=0.5)
                    except queue.Empty:
                        raise ChildProcessError(
                            f"{what} stopped unexpectedly (exit code {proc.exitcode})",
                            hint="see the log file; try again, or with a shorter video") from None
                else:
                    continue
            if kind == "progress":
                if progress is not None:
                    stage, done, total, eta, message = payload
                    progress(Progress(stage, done, total, eta, message))
            elif kind == "result":
                return payload
            elif kind == "cancelled":
                raise Cancelled()
            elif kind == "error":
                raise payload
            elif kind == "error_text":
                raise ChildProcessError(f"{what} failed: {payload.strip().splitlines()[-1]}")
    finally:
        cancel_flag.value = 1
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        out.close()
        out.join_thread()
