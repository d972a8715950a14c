"""A crash (kill -9) mid-export leaves the target untouched; the next export cleans up the leftover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.pipeline.export import export_video

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, time
from engine.pipeline.export import export_video
def slow(i, frame):
    time.sleep(0.05)
    return frame
export_video(sys.argv[1], sys.argv[2], frame_renderer=slow)
"""


@pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX")
def test_kill_9_leaves_the_target_untouched(video_25fps: Path, tmp_path: Path) -> None:
    target = tmp_path / "film.mp4"
    target.write_bytes(b"earlier export")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(video_25fps), str(target)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".film.partial-") for p in tmp_path.iterdir()):
            assert proc.poll() is None, "the export ended before it could be killed"
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"earlier export"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".film.partial-")]
    assert len(leftovers) == 1
    os.utime(leftovers[0], (time.time() - 3600, time.time() - 3600))  # a crash an hour ago
    export_video(video_25fps, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]
    assert target.read_bytes() != b"earlier export"
