"""A read-only folder or a full disk: a clear OutputError, no partial file, the earlier file kept.

Real file systems are used where the test may mount them (a small tmpfs; root on Linux); a chmod'ed
folder where permissions apply (not root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import OutputError
from engine.pipeline.export import ExportSettings, export_video


@contextlib.contextmanager
def _tmpfs(base: Path, size_kb: int) -> Iterator[Path]:
    mnt = base / f"mnt-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], check=True,
                       capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small file system here ({exc}); needs root on Linux")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def test_full_disk_gives_output_error_and_keeps_the_earlier_file(video_odd: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path, 256) as disk:
        target = disk / "film.mp4"
        target.write_bytes(b"earlier export")
        # Lossless 721x405 4:4:4 needs several MB: far more than the 256 kB disk.
        with pytest.raises(OutputError) as info:
            export_video(video_odd, target, settings=ExportSettings(crf=0, preset="ultrafast"))
        text = str(info.value)
        assert "disk is full" in text and str(target) in text
        assert target.read_bytes() == b"earlier export"
        assert [p.name for p in disk.iterdir()] == ["film.mp4"]


def test_read_only_file_system(video_25fps: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path, 1024) as disk:
        target = disk / "film.mp4"
        target.write_bytes(b"earlier export")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True, timeout=20)
        with pytest.raises(OutputError, match="read-only") as info:
            export_video(video_25fps, target)
        assert str(target) in str(info.value)
        assert target.read_bytes() == b"earlier export"
        assert [p.name for p in disk.iterdir()] == ["film.mp4"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(video_25fps: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            export_video(video_25fps, folder / "film.mp4")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
