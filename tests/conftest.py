"""Shared fixtures. Generated media fixtures live in tests/synth.py; real clips in ../shared/media."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep caches, logs and autosaves of the test run out of the user's real folders."""
    base = tmp_path_factory.mktemp("userdirs")
    os.environ.setdefault("LIPDUB_CACHE_DIR", str(base / "cache"))
    os.environ.setdefault("LIPDUB_DATA_DIR", str(base / "data"))
    os.environ.setdefault("LIPDUB_TORCH_THREADS", "1")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The folder of real clips; tests using it skip with a reason when it is absent."""
    if not (SHARED_MEDIA / "video").is_dir():
        pytest.skip(f"real test media not found at {SHARED_MEDIA} (only present beside the project checkout)")
    return SHARED_MEDIA


# --------------------------------------------------------------------------------------------------
# Generated media (tests/synth.py): small, fast, session-scoped. Frame i of each video shows index i
# (read it back with tests.synth.read_index).


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth media")  # a space in the path on purpose


@pytest.fixture(scope="session")
def video_25fps(synth_dir: Path) -> Path:
    """160x120, 25 fps, 50 frames (2 s), keyframe every 12 frames, B-frames, no audio."""
    from tests.synth import make_video

    return make_video(synth_dir / "cfr_25.mp4", fps=25, n_frames=50)


@pytest.fixture(scope="session")
def video_ntsc(synth_dir: Path) -> Path:
    """160x120, 30000/1001 fps, 60 frames."""
    from fractions import Fraction

    from tests.synth import make_video

    return make_video(synth_dir / "cfr_29.97.mp4", fps=Fraction(30000, 1001), n_frames=60)


VFR_TIMES = [0.0]
for _gap in [0.04, 0.02, 0.1, 0.0333, 0.04, 0.05, 0.02, 0.0667, 0.04] * 6:
    VFR_TIMES.append(round(VFR_TIMES[-1] + _gap, 4))


@pytest.fixture(scope="session")
def video_vfr(synth_dir: Path) -> Path:
    """160x120, 55 frames at irregular times (``VFR_TIMES``, seconds), time base 1/90000."""
    from tests.synth import make_video

    return make_video(synth_dir / "vfr.mp4", times=VFR_TIMES)


@pytest.fixture(scope="session")
def video_rotated(synth_dir: Path) -> Path:
    """Displays as 120x160 portrait (stored 160x120 with a 90° clockwise display rotation), 40 frames."""
    from tests.synth import make_video

    return make_video(synth_dir / "rotated_90.mp4", width=120, height=160, rotation=90, n_frames=40)


@pytest.fixture(scope="session")
def video_odd(synth_dir: Path) -> Path:
    """721x405 (odd sizes; H.264 4:4:4), 25 fps, 20 frames."""
    from tests.synth import make_video

    return make_video(synth_dir / "odd_721x405.mp4", width=721, height=405, n_frames=20)


@pytest.fixture(scope="session")
def video_with_audio(synth_dir: Path) -> Path:
    """320x240, 25 fps, 75 frames (3 s) + stereo 48 kHz AAC with 100 ms 1 kHz beeps at
    tests.synth.BEEP_TIMES (0.5, 1.5, 2.5 s)."""
    from tests.synth import make_video

    return make_video(synth_dir / "with_audio.mp4", width=320, height=240, fps=25, n_frames=75, audio="beeps")
