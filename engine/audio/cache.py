"""Small on-disk cache for per-track results (features, VAD, peaks), keyed by audio content.

Keys hash the samples themselves (plus the parameters that shaped the result), so a renamed or moved
file hits the cache and an edited one misses it. Files are written atomically (temp + rename).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from engine.runtime.paths import cache_dir

log = logging.getLogger("lipdub.audio.cache")


def content_key(samples: np.ndarray, sample_rate: int, *params: object) -> str:
    """A hex key for these samples at this rate and these parameters."""
    h = hashlib.sha256()
    a = np.ascontiguousarray(samples, dtype=np.float32)
    h.update(f"{a.shape}|{sample_rate}|{params!r}".encode())
    h.update(a.view(np.uint8).reshape(-1).data)
    return h.hexdigest()[:40]


def _path(kind: str, key: str) -> Path:
    return cache_dir("audio", kind) / f"{key}.npz"


def load(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored for ``key``, or None when absent or unreadable (a damaged entry is dropped)."""
    p = _path(kind, key)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("dropping unreadable cache entry %s: %s", p, exc)
        try:
            p.unlink()
        except OSError:
            pass
        return None


def store(kind: str, key: str, **arrays: np.ndarray) -> None:
    """Store arrays for ``key``; a failure to write only logs (the cache is an optimisation)."""
    p = _path(kind, key)
    tmp = p.with_name(f"{p.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, p)
    except OSError as exc:
        log.warning("cannot write cache entry %s: %s", p, exc)
        try:
            tmp.unlink()
        except OSError:
            pass
