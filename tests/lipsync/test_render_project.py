"""`lipdub render --project` and the direct form share one export path; the network refiner hook."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.cli import main
from engine.errors import EXIT_BAD_INPUT
from engine.pipeline.session import FrameComposer, FrameResult, plan_face
from tests.lipsync.previewstub import stub_preparation
from tests.lipsync.test_compose_synth import N, _speaker

CLIP = "vox_beard_full.mp4"
DUB = "dub_german1.wav"


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _project_file(path: Path, video: Path, dub: Path, identity: str, end_s: float, offset_s: float = 0.0) -> Path:
    from engine.project.model import Assignment, DubTrack, FaceIdentity, Project, Video
    from engine.project.store import save_project

    project = Project(
        video=Video(video),
        tracks=[DubTrack("t1", dub, language="de", offset_s=offset_s)],
        identities=[FaceIdentity(identity)],
        assignments=[Assignment("a1", "t1", identity, 0.0, end_s)],
    )
    save_project(project, path)
    return path


# ------------------------------------------------------------------------------------------------
# The refiner hook (the network engine's place in the composer)
# ------------------------------------------------------------------------------------------------


class _StubRefiner:
    """Records its calls and returns the warp darkened, so its effect is visible inside the mask."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, int, int, int], tuple[int, ...]]] = []
        self.resets = 0

    def render_box(self, frame: np.ndarray, own: np.ndarray, target: np.ndarray, box: tuple[int, int, int, int],
                   warp: np.ndarray | None = None) -> np.ndarray:
        assert warp is not None and own.shape == target.shape == (468, 2)
        x0, y0, x1, y1 = box
        assert warp.shape == (y1 - y0, x1 - x0, 3)
        self.calls.append((box, warp.shape))
        return (warp // 3).astype(np.uint8)

    def reset(self) -> None:
        self.resets += 1


def test_refiner_refines_the_warp_and_leaves_outside_the_mask_bit_identical() -> None:
    _, frames, fit, track = _speaker()
    codes = np.repeat(fit.bank.codes[:1], N, 0)
    plain = plan_face(track, fit, codes)
    refined = plan_face(track, fit, codes)
    stub = _StubRefiner()
    refined.refiner = stub
    with_net, without = FrameComposer([refined]), FrameComposer([plain])
    changed_inside = 0
    for i in range(0, N, 5):
        details: list[FrameResult] = []
        out = with_net(i, frames[i], details)
        ref = without(i, frames[i])
        assert len(details) == 1
        full = details[0].mask.full(*frames[i].shape[:2])
        assert np.array_equal(out[full == 0], frames[i][full == 0]), "pixels outside the mask are the source's"
        changed_inside += int(not np.array_equal(out[full == 1], ref[full == 1]))
    assert len(stub.calls) == len(range(0, N, 5)), "render_box is called once per changed face and frame"
    assert changed_inside == len(stub.calls), "the refined crop is what gets blended in"
    assert stub.resets >= 1, "the refiner is reset at jumps (it keeps a reference choice)"


def test_unknown_engine_is_bad_input(tmp_path: Path) -> None:
    from engine.errors import BadInputError
    from engine.pipeline.render import prepare_render

    with pytest.raises(BadInputError, match="unknown engine"):
        prepare_render(tmp_path / "x.mp4", [], engine="gan")


# ------------------------------------------------------------------------------------------------
# CLI: usage and bad input (no face analysis of real media needed)
# ------------------------------------------------------------------------------------------------


def test_exactly_one_of_video_or_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    assert main(["render", "--out", str(out)]) == EXIT_BAD_INPUT
    assert "exactly one of VIDEO or --project" in capsys.readouterr().err
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    assert main(["render", str(video), "--project", str(tmp_path / "p.json"), "--out", str(out)]) == EXIT_BAD_INPUT
    assert main(["render", str(video), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "--track" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("content", [b'{"schema_version": 1, "video": ', b"\x00\xff garbage",
                                     b'{"schema_version": 999, "tracks": []}'])
def test_broken_or_newer_project_is_bad_input_and_writes_nothing(tmp_path: Path, content: bytes,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "p.json"
    p.write_bytes(content)
    out = tmp_path / "out.mp4"
    assert main(["render", "--project", str(p), "--out", str(out), "--json"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert str(p) in captured.err
    [line] = captured.out.splitlines()
    event = json.loads(line)
    assert event["event"] == "error" and event["exit_code"] == EXIT_BAD_INPUT and str(p) in event["message"]
    assert not out.exists() and list(tmp_path.iterdir()) == [p]


def test_project_with_missing_media_is_bad_input(tmp_path: Path, video_with_audio: Path) -> None:
    p = _project_file(tmp_path / "p.json", video_with_audio, tmp_path / "gone.wav", "0", 3.0)
    out = tmp_path / "out.mp4"
    assert main(["render", "--project", str(p), "--out", str(out)]) == EXIT_BAD_INPUT
    assert not out.exists()


def test_faceless_video_gives_no_face_error(tmp_path: Path, video_with_audio: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.synth import make_audio

    dub, _ = make_audio(tmp_path / "dub.wav", codec="pcm_s16le", duration=2.0, kind="beeps")
    p = _project_file(tmp_path / "p.json", video_with_audio, dub, "0", 3.0)
    out = tmp_path / "out.mp4"
    assert main(["render", "--project", str(p), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "no face" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# A real render from a project file
# ------------------------------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.slow
def test_project_render_on_a_real_clip(shared_media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.faces import analyse
    from engine.media.audio import decode_audio
    from engine.media.probe import probe
    from engine.pipeline.render import choose_face
    from engine.pipeline.tracks import tracks_from_analysis

    video = shared_media / "video" / CLIP
    src = probe(video, use_cache=False).require_video()
    face = choose_face(tracks_from_analysis(analyse(video)), None, video).identity
    d = decode_audio(shared_media / "audio" / DUB, sample_rate=16000, channels=1)
    dub_samples = d.mono()[16000 * 2: 16000 * 5]  # 3 s of speech
    dub = _write_wav(tmp_path / "dub de.wav", dub_samples, 16000)
    offset = 1.0
    end = float(src.frame_times[-1] - src.frame_times[0]) + 1.0 / src.fps
    p = _project_file(tmp_path / "p.json", video, dub, face, end, offset_s=offset)
    out = tmp_path / "dubbed.mp4"
    capsys.readouterr()
    rc = main(["render", "--project", str(p), "--language", "de", "--out", str(out), "--no-library", "--json"])
    captured = capsys.readouterr()
    assert rc == 0 and out.is_file(), captured.err
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["event"] == "done" and result["outputs"][0]["path"] == str(out.absolute())
    assert 0 < result["outputs"][0]["rendered"] <= src.frame_count
    assert any(json.loads(line)["event"] == "progress" for line in captured.err.splitlines() if line.startswith("{"))

    info = probe(out, use_cache=False)
    dst = info.require_video()
    assert dst.frame_count == src.frame_count
    np.testing.assert_allclose(dst.frame_times - dst.frame_times[0], src.frame_times - src.frame_times[0], atol=1e-3)
    assert len(info.audio) == 1 and info.audio[0].language in ("de", "deu", "ger")

    # The audio is the dub (dub_only), placed at its offset: silent before, the dub's envelope after.
    got = decode_audio(out, sample_rate=16000).mono()  # the channels' mean (a resampled downmix adds 3 dB)
    start = round(16000 * (float(info.audio[0].start_time) - float(dst.frame_times[0])))
    pad = np.zeros(max(0, start), np.float32)
    got = np.concatenate([pad, got[max(0, -start):]])
    lead = round(16000 * offset)
    assert np.sqrt(np.mean(got[: lead - 800] ** 2)) < 1e-3, "nothing plays before the dub's offset"
    win = 320  # 20 ms envelopes
    seg = got[lead: lead + len(dub_samples)]
    k = min(len(seg), len(dub_samples)) // win
    env_out = np.sqrt((seg[: k * win].reshape(k, win) ** 2).mean(1))
    env_dub = np.sqrt((dub_samples[: k * win].reshape(k, win) ** 2).mean(1))
    assert k > 100 and np.corrcoef(env_out, env_dub)[0, 1] > 0.9, "the output's audio is the dub"
    level = np.sqrt(np.mean(seg ** 2)) / np.sqrt(np.mean(dub_samples[: len(seg)] ** 2))
    assert 0.7 < level < 1.3, f"the dub plays at its own level (ratio {level:.2f})"


@pytest.mark.media
@pytest.mark.slow
def test_net_engine_renders_end_to_end(shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--engine net`` on the smallest real clip, with a tiny network (the real one trains for minutes)."""
    import engine.regen.infer as infer
    from engine.media.probe import probe
    from engine.regen.train import RegenConfig

    tiny = RegenConfig(crop_size=32, base_channels=8, depth=2, disc_channels=8, batch_pairs=2, max_steps=20,
                       adv_start=10, eval_every=10, checkpoint_every=10, val_pairs=4, patience=100)
    made: list[Any] = []
    real = infer.refiner_for

    def tiny_refiner(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["device"] == "cpu"
        made.append(real(*args, **{**kwargs, "config": tiny}))
        return made[-1]

    monkeypatch.setattr(infer, "refiner_for", tiny_refiner)
    calls = {"n": 0}
    real_box = infer.NetRenderer.render_box

    def counted(self: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        calls["n"] += 1
        return real_box(self, *args, **kwargs)

    monkeypatch.setattr(infer.NetRenderer, "render_box", counted)
    video = shared_media / "video" / CLIP
    out = tmp_path / "net.mp4"
    rc = main(["render", str(video), "--track", str(shared_media / "audio" / DUB), "--out", str(out),
               "--no-library", "--engine", "net", "--device", "cpu"])
    assert rc == 0 and out.is_file()
    assert len(made) == 1 and isinstance(made[0], infer.NetRenderer)
    src = probe(video, use_cache=False).require_video()
    assert probe(out, use_cache=False).require_video().frame_count == src.frame_count
    assert calls["n"] > 0.5 * src.frame_count, "the network rendered the changed faces"


@pytest.mark.media
@pytest.mark.slow
def test_each_language_file_follows_its_own_dub(shared_media: Path, tmp_path: Path) -> None:
    from engine.faces import analyse
    from engine.media.audio import decode_audio
    from engine.media.probe import probe
    from engine.media.reader import VideoReader
    from engine.pipeline.render import choose_face
    from engine.pipeline.tracks import tracks_from_analysis
    from engine.project.model import Assignment, DubTrack, FaceIdentity, Project, Video
    from engine.project.store import save_project

    video = shared_media / "video" / CLIP
    src = probe(video, use_cache=False).require_video()
    face = choose_face(tracks_from_analysis(analyse(video)), None, video).identity
    end = float(src.frame_times[-1] - src.frame_times[0]) + 1.0 / src.fps
    tracks = []
    for lang, name in (("de", "dub_german1.wav"), ("fr", "dub_french1.wav")):
        d = decode_audio(shared_media / "audio" / name, sample_rate=16000, channels=1).mono()[16000: 16000 * 5]
        tracks.append(DubTrack(lang, _write_wav(tmp_path / f"{lang}.wav", d, 16000), language=lang))
    project = Project(video=Video(video), tracks=tracks, identities=[FaceIdentity(face)],
                      assignments=[Assignment(f"a{t.id}", t.id, face, 0.0, end) for t in tracks])
    p = tmp_path / "p.json"
    save_project(project, p)
    out = tmp_path / "film.mp4"
    assert main(["render", "--project", str(p), "--out", str(out), "--no-library",
                 "--language-mode", "file_per_language"]) == 0
    files = {lang: tmp_path / f"film.{lang}.mp4" for lang in ("de", "fr")}
    assert all(f.is_file() for f in files.values()) and not out.exists()
    assert [a.language for a in probe(files["fr"], use_cache=False).audio] == ["fra"]
    with VideoReader(files["de"], pixel_format="bgr24") as a, VideoReader(files["fr"], pixel_format="bgr24") as b:
        differ = sum(not np.array_equal(a.frame(i), b.frame(i)) for i in range(10, src.frame_count, 10))
    assert differ >= 5, "the German and the French file have different mouths"

    both = tmp_path / "both.mp4"
    assert main(["render", "--project", str(p), "--out", str(both), "--no-library",
                 "--language-mode", "one_file_multi_track", "--audio", "dub_plus_original"]) == 0
    info = probe(both, use_cache=False)
    langs = [a.language for a in info.audio]  # dub_plus_original: the mix and the dub alone, per language
    assert langs[0] == "deu" and set(langs) == {"deu", "fra"} and langs == sorted(langs)
    assert info.require_video().frame_count == src.frame_count


def test_project_preview_prepares_with_its_engine_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's preview follows the engine setting: a change of engine re-prepares with the new one."""
    import engine.pipeline.render as render_mod
    from engine.project import Assignment, DubTrack, FaceIdentity, Project, Video

    calls = stub_preparation(monkeypatch)
    project = Project(video=Video(path=tmp_path / "v.mp4"),
                      tracks=[DubTrack(id="t1", path=tmp_path / "dub.wav", language="de")],
                      identities=[FaceIdentity(id="0", name="Person 1")],
                      assignments=[Assignment(id="a1", track_id="t1", identity_id="0", start_s=0.0, end_s=1.0)])
    preview = render_mod.ProjectPreview(use_library=False)
    preview.prepare(project)
    preview.prepare(project)  # nothing changed: no second preparation
    preview.engine, preview.device = "net", "cpu"
    preview.prepare(project)
    assert [(c["engine"], c["device"]) for c in calls] == [("retrieval", "auto"), ("net", "cpu")]


def test_direct_form_reports_the_face_analysis_that_finds_the_speaker(
        tmp_path: Path, video_with_audio: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --face the direct form analyses the video to find the most present face: minutes on
    long footage, so it is reported (the prepare stage's "faces" step) and can be cancelled."""
    import engine.faces
    from engine.pipeline import render as render_mod
    from engine.pipeline.tracks import FaceTrack
    from engine.runtime.jobs import CancelToken, Progress

    seen: list[Progress] = []
    tokens: list[object] = []

    def fake_analyse(video: Path, progress: Any = None, cancel: Any = None, **_: Any) -> object:
        tokens.append(cancel)
        for i in range(1, 4):
            progress(Progress("faces", i, 3, None, f"frame {i} of 3"))
        return object()

    monkeypatch.setattr(engine.faces, "analyse", fake_analyse)
    track = FaceTrack("7", np.arange(5), np.zeros((5, 468, 2)), np.zeros((5, 3)), np.ones(5, bool))
    monkeypatch.setattr(render_mod, "tracks_from_analysis", lambda analysis: [track])
    token = CancelToken()
    project = render_mod.project_for_video(video_with_audio, [render_mod.TrackAssignment(tmp_path / "d.wav")],
                                           seen.append, token)
    assert [i.id for i in project.identities] == ["7"]
    assert tokens == [token]
    faces = [p for p in seen if p.message.startswith("faces")]
    assert len(faces) == 3 and faces[-1].stage == "prepare"
    assert faces[0].fraction < faces[-1].fraction <= 0.4
