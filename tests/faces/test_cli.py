"""``lipdub analyse``: printed summary, JSON, overlay video, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import pytest

from engine.cli import analyse as cli_analyse
from engine.errors import MediaError
from engine.media import VideoReader
from tests.faces.test_real_media import _frames, _write


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lipdub")
    cli_analyse.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyse", *argv])
    return int(args.func(args))


def test_registered_in_the_dispatcher() -> None:
    from engine.cli import SUBCOMMAND_MODULES

    assert "engine.cli.analyse" in SUBCOMMAND_MODULES


def test_no_face_video_prints_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [np.full((96, 128, 3), 30 + 5 * i, np.uint8) for i in range(12)]
    path = _write(tmp_path / "empty.mp4", frames)
    assert _run([str(path)]) == 0
    out = capsys.readouterr().out
    assert "no faces found" in out and "12 frames" in out
    assert _run([str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["identities"] == [] and doc["frame_count"] == 12


def test_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        _run([str(tmp_path / "nope.mp4")])


def test_json_and_overlay_on_a_real_clip(shared_media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "clip.mp4", list(_frames(shared_media / "video" / "radio_glasses.mp4", 20)))
    overlay = tmp_path / "out" / "overlay.mp4"
    overlay.parent.mkdir()
    assert _run([str(path), "--json", "--overlay", str(overlay), "--stills", str(tmp_path / "stills")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["identities"]) == 1
    person = doc["identities"][0]
    assert person["frames_present"] == 20 and person["time_ranges"][0][0] == 0.0
    assert set(person["pose_range"]) == {"yaw", "pitch", "roll"}
    with VideoReader(overlay) as r:
        assert len(r) == 20
        src = r.frame(10)
    with VideoReader(path) as r:
        orig = r.frame(10)
    assert np.abs(src.astype(int) - orig.astype(int)).max() > 100  # something was drawn
    assert len(list((tmp_path / "stills").glob("*.png"))) == 4
    assert [p.name for p in overlay.parent.iterdir()] == ["overlay.mp4"]  # no partial file left behind
    av.open(str(overlay)).close()


def test_insightface_without_a_pack_says_what_the_folder_holds(tmp_path: Path) -> None:
    from engine.faces import InsightFacePackError

    (tmp_path / "det_10g.onnx").write_bytes(b"truncated download")
    frames = [np.full((64, 64, 3), 100, np.uint8)] * 3
    path = _write(tmp_path / "v.mp4", frames)
    with pytest.raises(InsightFacePackError) as err:
        _run([str(path), "--backend", "insightface", "--insightface-dir", str(tmp_path)])
    text = err.value.user_text()
    assert "incomplete" in text and "det_10g.onnx" in text and "v.mp4" in text and "builtin" in text
    assert err.value.exit_code == 3
