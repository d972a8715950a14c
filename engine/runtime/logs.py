"""Logging to a rotating file in the user's data folder (and, for the CLI, to stderr)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from engine.runtime.paths import log_dir

_CONFIGURED = False


def setup_logging(level: int = logging.INFO, to_stderr: bool = False) -> Path:
    """Configure the root logger once; returns the log file's path."""
    global _CONFIGURED
    path = log_dir() / "lipdub.log"
    root = logging.getLogger()
    if not _CONFIGURED:
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)
        _CONFIGURED = True
    if to_stderr and not any(getattr(h, "_lipdub_stderr", False) for h in root.handlers):
        stream = logging.StreamHandler()
        stream.setLevel(logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        stream._lipdub_stderr = True  # type: ignore[attr-defined]
        root.addHandler(stream)
    return path
