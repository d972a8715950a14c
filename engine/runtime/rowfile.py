"""An array kept in a temporary file and read a few rows at a time.

For per-frame data of a long video that the engine needs for the whole render but reads a frame or a
block of frames at a time (face landmarks): the rows live in the file, so the process holds only the
rows it is reading, and their pages stay in the system's file cache where other programs can have
them back. Nothing is mapped into the process.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """``(k, j)`` spans of ``positions`` whose values go up by one from ``positions[k]``."""
    if len(positions) == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(positions) != 1) + 1, [len(positions)]]).tolist()
    return list(itertools.pairwise(starts))


class FileRows:
    """Rows of a C-ordered (n, ...) array stored from byte ``offset`` of an open binary file, read
    with ``readinto`` under a lock (so threads may share it); ``name`` says which file in errors.

    ``rows[i]`` (one row), ``rows[a:b]`` and ``rows[int or bool array]`` (1-D) read those rows into a
    new array; ``np.asarray(rows)`` reads them all. Other indexing is refused, not read differently."""

    def __init__(self, file: Any, offset: int, shape: tuple[int, ...], dtype: Any, name: str) -> None:
        self._file = file
        self._offset = int(offset)
        self.shape: tuple[int, ...] = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._row = int(self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64)))
        self._name = name
        self._lock = threading.Lock()
        self._owner: FileRows | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _read_rows(self, start: int, out: np.ndarray) -> None:
        """Rows ``start .. start + len(out)`` into ``out`` (contiguous)."""
        want = len(out) * self._row
        with self._lock:
            self._file.seek(self._offset + start * self._row)
            got = self._file.readinto(out.reshape(-1).view(np.uint8).data)
        if got != want:
            raise OSError(f"{self._name} is truncated (row {start})")

    def _gather(self, positions: np.ndarray) -> np.ndarray:
        """The rows at ``positions`` (in range, non-negative), runs of consecutive rows read at once."""
        pos = np.asarray(positions, np.int64)
        out = np.empty((len(pos), *self.shape[1:]), self.dtype)
        for k, j in _runs(pos):
            self._read_rows(int(pos[k]), out[k:j])
        return out

    def _row_at(self, key: Any) -> np.ndarray:
        i = int(key)
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        return self._gather(np.array([i % len(self)]))[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple) or isinstance(key, (bool, np.bool_)):
            raise TypeError("a row file is read by whole rows")
        if isinstance(key, (int, np.integer)):
            return self._row_at(key)
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:  # one run: read at once, no index array
                out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
                if len(out):
                    self._read_rows(start, out)
                return out
            return self._gather(np.arange(start, stop, step))
        a = np.asarray(key)
        if a.ndim != 1 or not (a.dtype == bool or a.dtype.kind in "iu" or a.size == 0):
            raise TypeError(f"a row file is read by a row, a slice or a 1-D list or mask of rows, not {key!r}")
        if a.dtype == bool:
            if a.shape != (len(self),):
                raise IndexError(f"a boolean index over {len(self)} rows has shape {a.shape}")
            return self._gather(np.flatnonzero(a))
        pos = a.astype(np.int64)
        if pos.size and (pos.min() < -len(self) or pos.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        return self._gather(np.where(pos < 0, pos + len(self), pos))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def part(self, start: int, stop: int) -> FileRows:
        """Rows ``start .. stop`` (clipped) as rows of the same file: nothing is read or copied."""
        a = min(max(0, int(start)), len(self))
        b = min(max(a, int(stop)), len(self))
        return self._view(self._offset + a * self._row, (b - a, *self.shape[1:]))

    def reshaped(self, row_shape: tuple[int, ...]) -> FileRows:
        """The same bytes as rows of another shape (the same size per row), e.g. (n, 1) as (n,)."""
        if int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize != self._row:
            raise ValueError(f"rows of shape {row_shape} are not the size of rows of shape {self.shape[1:]}")
        return self._view(self._offset, (len(self), *row_shape))

    def _view(self, offset: int, shape: tuple[int, ...]) -> FileRows:
        view = FileRows(self._file, offset, shape, self.dtype, self._name)
        view._lock = self._lock  # one file position: readers of both take the same lock
        view._owner = self  # the file lives while a view of it does
        return view

    def close(self) -> None:
        self._file.close()


class RowFile(FileRows):
    """An (n, ...) array in an unnamed temporary file (deleted when closed or collected), read as
    :class:`FileRows`. :meth:`blank` makes one of zeros to be filled with :meth:`write` (a result
    computed a block at a time, never held whole)."""

    def __init__(self, array: np.ndarray, directory: str | Path | None = None) -> None:
        a = np.ascontiguousarray(array)
        if a.ndim < 1:
            raise ValueError("a row file holds an array of rows")
        file: Any = tempfile.TemporaryFile(dir=directory)
        try:
            for i in range(0, len(a), 4096):  # written in blocks: no bytes copy of the whole array
                file.write(a[i : i + 4096].tobytes())
            file.flush()
        except BaseException:
            file.close()
            raise
        super().__init__(file, 0, a.shape, a.dtype, "a temporary row file")

    @classmethod
    def blank(cls, shape: tuple[int, ...], dtype: Any, directory: str | Path | None = None) -> RowFile:
        """A row file of zeros of this shape and dtype (the file is sparse until written)."""
        if len(shape) < 1:
            raise ValueError("a row file holds an array of rows")
        rows = cls.__new__(cls)
        file: Any = tempfile.TemporaryFile(dir=directory)
        FileRows.__init__(rows, file, 0, shape, dtype, "a temporary row file")
        file.truncate(rows.shape[0] * rows._row)
        return rows

    def write(self, start: int, rows: np.ndarray) -> None:
        """Overwrite rows ``start .. start + len(rows)`` (which must lie inside the file)."""
        block = np.ascontiguousarray(rows, self.dtype)
        if block.shape[1:] != self.shape[1:] or not 0 <= start <= len(self) - len(block):
            raise IndexError(f"rows {start}..{start + len(block)} of shape {block.shape[1:]} do not fit "
                             f"{self.shape}")
        with self._lock:
            self._file.seek(self._offset + start * self._row)
            self._file.write(block.data)

    def write_at(self, positions: np.ndarray, rows: np.ndarray) -> None:
        """``self[positions] = rows`` (positions in range), a run of consecutive positions at a time."""
        pos = np.asarray(positions, np.int64)
        for k, j in _runs(pos):
            self.write(int(pos[k]), rows[k:j])


def map_rows(rows: FileRows, convert: Callable[[np.ndarray], np.ndarray], row_shape: tuple[int, ...],
             directory: str | Path | None = None, block: int = 1 << 18) -> RowFile:
    """``convert`` (row by row: a block in, the same number of rows out, of ``row_shape``) applied to
    rows in a file, into a new float32 row file a block at a time."""
    out = RowFile.blank((len(rows), *row_shape), np.float32, directory)
    for i in range(0, len(rows), block):
        out.write(i, convert(rows[i : i + block]))
    return out


class RowLog(FileRows):
    """Rows appended one at a time to an unnamed temporary file and read back as :class:`FileRows`:
    per-frame results collected while a video is processed (a face's landmarks) without holding
    them. :meth:`append` returns the new row's index."""

    def __init__(self, row_shape: tuple[int, ...], dtype: Any, directory: str | Path | None = None) -> None:
        file: Any = tempfile.TemporaryFile(dir=directory)
        super().__init__(file, 0, (0, *row_shape), dtype, "a temporary row log")

    def append(self, row: np.ndarray) -> int:
        r = np.ascontiguousarray(row, self.dtype)
        if r.shape != self.shape[1:]:
            raise ValueError(f"a row of shape {r.shape} does not fit rows of shape {self.shape[1:]}")
        with self._lock:
            i = self.shape[0]
            self._file.seek(self._offset + i * self._row)
            self._file.write(r.data)
            self.shape = (i + 1, *self.shape[1:])
        return i

    def extend(self, rows: np.ndarray) -> None:
        """Append several rows at once."""
        r = np.ascontiguousarray(rows, self.dtype)
        if r.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of shape {r.shape[1:]} do not fit rows of shape {self.shape[1:]}")
        with self._lock:
            n = self.shape[0]
            self._file.seek(self._offset + n * self._row)
            self._file.write(r.data)
            self.shape = (n + len(r), *self.shape[1:])


def open_npy_rows(path: str | Path) -> FileRows:
    """The rows of a C-ordered ``.npy`` file, read a few at a time from the open file (never mapped
    or loaded whole). Raises ValueError for a file that is not such an array or is cut short."""
    p = Path(path)
    file: Any = open(p, "rb")  # kept open by the rows, closed by their close()
    try:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            raise ValueError(f"{p.name}: .npy format {version} is not read here")
        if fortran or len(shape) < 1 or dtype.hasobject:
            raise ValueError(f"{p.name} does not hold C-ordered rows of numbers")
        offset = file.tell()
        rows = FileRows(file, offset, shape, dtype, str(p))
        if p.stat().st_size < offset + len(rows) * rows._row:
            raise ValueError(f"{p.name} is cut short")
        return rows
    except BaseException:
        file.close()
        raise


def save_npy_rows(target: str | Path | BinaryIO, rows: np.ndarray | FileRows, block: int = 4096) -> None:
    """Write ``rows`` (an array or rows in a file) as a ``.npy`` file (a path, or a binary file open
    for writing), a block of rows at a time."""
    if isinstance(target, (str, Path)):
        with open(target, "wb") as file:
            save_npy_rows(file, rows, block)
        return
    shape = tuple(int(v) for v in rows.shape)
    dtype = np.dtype(rows.dtype)
    np.lib.format.write_array_header_2_0(
        target, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    for i in range(0, shape[0], block):
        target.write(np.ascontiguousarray(rows[i : i + block], dtype).data)
