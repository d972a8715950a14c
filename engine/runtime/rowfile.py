"""An array kept in a temporary file and read a few rows at a time.

For per-frame data of a long video that the engine needs for the whole render but reads a frame or a
block of frames at a time (face landmarks): the rows live in the file, so the process holds only the
rows it is reading, and their pages stay in the system's file cache where other programs can have
them back. Nothing is mapped into the process.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np


class RowFile:
    """A read-only (n, ...) array in an unnamed temporary file (deleted when closed or collected).

    ``rows[i]`` (one row), ``rows[a:b]`` and ``rows[int or bool array]`` (1-D) read those rows into a
    new array; ``np.asarray(rows)`` reads them all. Other indexing is refused, not read differently."""

    def __init__(self, array: np.ndarray, directory: str | Path | None = None) -> None:
        a = np.ascontiguousarray(array)
        if a.ndim < 1:
            raise ValueError("a row file holds an array of rows")
        self.shape: tuple[int, ...] = tuple(int(v) for v in a.shape)
        self.dtype = a.dtype
        self.ndim = a.ndim
        self._row = int(a.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64)))
        self._file: Any = tempfile.TemporaryFile(dir=directory)
        try:
            for i in range(0, len(a), 4096):  # written in blocks: no bytes copy of the whole array
                self._file.write(a[i : i + 4096].tobytes())
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def _read_run(self, start: int, out: np.ndarray) -> None:
        """Rows ``start .. start + len(out)`` into ``out`` (contiguous)."""
        want = len(out) * self._row
        with self._lock:
            self._file.seek(start * self._row)
            got = self._file.readinto(out.reshape(-1).view(np.uint8).data)
        if got != want:
            raise OSError(f"row file truncated at row {start}")

    def _positions(self, key: Any) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        a = np.asarray(key)
        if a.ndim != 1 or not (a.dtype == bool or a.dtype.kind in "iu" or a.size == 0):
            raise TypeError(f"a row file is read by a row, a slice or a 1-D list or mask of rows, not {key!r}")
        return np.arange(n)[a.astype(np.int64) if a.size == 0 else a]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple) or isinstance(key, (bool, np.bool_)):
            raise TypeError("a row file is read by whole rows")
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"row {i} of {len(self)}")
            out = np.empty((1, *self.shape[1:]), self.dtype)
            self._read_run(i % len(self), out)
            return out[0]
        pos = self._positions(key)
        out = np.empty((len(pos), *self.shape[1:]), self.dtype)
        # Runs of consecutive rows are read with one call each.
        k = 0
        while k < len(pos):
            j = k + 1
            while j < len(pos) and pos[j] == pos[j - 1] + 1:
                j += 1
            self._read_run(int(pos[k]), out[k:j])
            k = j
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def close(self) -> None:
        self._file.close()
