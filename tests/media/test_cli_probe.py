"""``lipdub probe FILE [--json] [--frames]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main


def test_probe_text(video_rotated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(video_rotated)]) == 0
    out = capsys.readouterr().out
    assert "120x160 as displayed (stored 160x120)" in out
    assert "90° clockwise" in out and "25.000 fps" in out and "40 (" in out


def test_probe_json_frames(video_vfr: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import VFR_TIMES

    assert main(["probe", str(video_vfr), "--json", "--frames"]) == 0
    d = json.loads(capsys.readouterr().out)
    v = d["videos"][0]
    assert v["is_vfr"] is True and v["frame_count"] == len(VFR_TIMES)
    assert v["frame_times"] == pytest.approx(VFR_TIMES, abs=1e-5)


def test_probe_frames_table(video_25fps: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(video_25fps), "--frames"]) == 0
    out = capsys.readouterr().out
    assert "    49" in out and "1.960000" in out


def test_probe_audio_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.synth import make_audio

    p, _ = make_audio(tmp_path / "dub.flac", codec="flac", rate=44100, channels=2)
    assert main(["probe", str(p)]) == 0
    assert "flac, 44100 Hz, 2 ch (stereo)" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "text", "zero"])
def test_probe_bad_input_exit_3(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.synth import make_zero_frame_video

    p = tmp_path / f"bad {kind} é.mp4"
    if kind == "text":
        p.write_text("not a video" * 100)
    elif kind == "zero":
        p = make_zero_frame_video(tmp_path / "zero é.mkv")
    assert main(["probe", str(p)]) == 3
    err = capsys.readouterr().err
    assert str(p) in err and "Traceback" not in err
