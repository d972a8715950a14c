"""Process-wide runtime services: progress and cancel, devices, threads, folders, logging."""

from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel, null_progress
from engine.runtime.paths import cache_dir, data_dir, log_dir

__all__ = [
    "CancelToken",
    "Progress",
    "ProgressFn",
    "cache_dir",
    "check_cancel",
    "data_dir",
    "log_dir",
    "null_progress",
]
