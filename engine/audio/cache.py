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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows, open_npy_rows, save_npy_rows

log = logging.getLogger("lipdub.audio.cache")


def content_key(samples: np.ndarray | FileRows, sample_rate: int, *params: object) -> str:
    """A hex key for these samples at this rate and these parameters (float32 samples in a file are
    read a block at a time and give the key their array would)."""
    h = hashlib.sha256()
    if isinstance(samples, FileRows) and samples.dtype == np.float32:
        h.update(f"{samples.shape}|{sample_rate}|{params!r}".encode())
        for i in range(0, len(samples), 1 << 20):
            h.update(np.ascontiguousarray(samples[i : i + (1 << 20)]).view(np.uint8).reshape(-1).data)
        return h.hexdigest()[:40]
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
        _drop(p, exc)
        return None


def store(kind: str, key: str, **arrays: np.ndarray) -> None:
    """Store arrays for ``key``; a failure to write only logs (the cache is an optimisation)."""
    _write(_path(kind, key), lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]


def _rows_path(kind: str, key: str, name: str) -> Path:
    return cache_dir("audio", kind) / f"{key}.{name}.npy"


def load_rows(kind: str, key: str, name: str) -> FileRows | None:
    """Rows stored with :func:`store_rows`, read from the open file a few at a time (a long track's
    result is not loaded whole), or None when absent or unreadable (a damaged entry is dropped)."""
    p = _rows_path(kind, key, name)
    if not p.is_file():
        return None
    try:
        return open_npy_rows(p)
    except (OSError, ValueError) as exc:
        _drop(p, exc)
        return None


def store_rows(kind: str, key: str, name: str, rows: np.ndarray | FileRows) -> None:
    """Store ``rows`` as their own file for ``key``, written a block at a time; a failure to write
    only logs. Store them before the entry's other arrays (:func:`store`), whose presence says the
    entry is complete."""
    _write(_rows_path(kind, key, name), lambda tmp: save_npy_rows(tmp, rows))


def _write(p: Path, write: Callable[[Path], None]) -> None:
    """``write`` to a temporary name beside ``p`` (same suffix), renamed to ``p`` when complete; a
    failure only logs."""
    tmp = p.with_name(f"{p.stem}.{os.getpid()}.{threading.get_ident()}.tmp{p.suffix}")
    try:
        write(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        log.warning("cannot write cache entry %s: %s", p, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def _drop(p: Path, exc: Exception) -> None:
    log.warning("dropping unreadable cache entry %s: %s", p, exc)
    try:
        p.unlink()
    except OSError:
        pass
