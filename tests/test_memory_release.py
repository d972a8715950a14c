"""The allocator is asked to give freed memory back between a job's stages (engine.runtime.memory)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine.runtime.memory import release_free_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is a glibc call")
def test_freed_heap_goes_back_to_the_system_on_linux() -> None:
    def rss_kib() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    # Many mid-sized buffers come from the heap, and freeing them leaves it large.
    blocks = [np.ones(16_000, np.float64) for _ in range(6000)]  # about 770 MB of 128 kB blocks
    del blocks[:-1]
    before = rss_kib()
    assert release_free_memory() is True
    assert rss_kib() < before - 100_000  # at least 100 MB handed back
