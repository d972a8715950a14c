"""Float PCM that lives in a temporary file: the output mix of a long video without holding it in memory.

A 10-minute 48 kHz stereo float32 track is 220 MiB and an hour 1.3 GiB; the export encodes it a few
thousand samples at a time, so the mix is written to an unnamed temporary file (gone when closed or
when the process ends; the mixer puts it in the user's cache folder, since the system's temporary
folder is often held in memory) and read back a block at a time. :class:`PcmFile` answers the part of the
array interface the mixer and the encoder use: ``shape``, ``ndim``, ``dtype``, ``len``, reading and
writing runs of rows (``x[a:b]``, ``x[a:b, c]``, ``x[a:b] = block``) and ``np.asarray(x)``.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from engine.runtime.rowfile import FileRows, RowFile


class PcmFile(RowFile):
    """float32 samples (frames, channels) in an unnamed temporary file, zero at first: a
    :class:`engine.runtime.rowfile.RowFile` that also reads one channel of a run (``x[a:b, c]``) and
    writes runs by assignment (``x[a:b] = block``, a scalar fills the run)."""

    def __init__(self, frames: int, channels: int, directory: str | None = None) -> None:
        if frames < 0 or channels < 1:
            raise ValueError(f"bad PCM shape ({frames}, {channels})")
        file: Any = tempfile.TemporaryFile(dir=directory)  # closed by close()
        FileRows.__init__(self, file, 0, (int(frames), int(channels)), np.float32, "the temporary audio file")
        file.truncate(self.shape[0] * self._row)

    def _run(self, index: Any) -> tuple[int, int, Any]:
        rows, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        if isinstance(rows, (int, np.integer)):
            i = int(rows) + (len(self) if int(rows) < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {int(rows)} of {len(self)}")
            return i, i + 1, (0, *rest)
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("a PcmFile reads and writes runs of rows (a[i], a[i:j], a[i:j, c])")
        start, stop, _ = rows.indices(len(self))
        return start, max(start, stop), (slice(None), *rest)

    def __getitem__(self, index: Any) -> np.ndarray:
        start, stop, rest = self._run(index)
        out = np.empty((stop - start, self.shape[1]), np.float32)
        self._read_rows(start, out)
        return out[rest]

    def __setitem__(self, index: Any, value: Any) -> None:
        start, stop, rest = self._run(index)
        if rest[1:]:
            raise TypeError("a PcmFile writes whole rows")
        self.write(start, np.broadcast_to(np.asarray(value, np.float32), (stop - start, self.shape[1])))
