"""The predicted sync score of each assignment's planned mouth (render.plan_sync), how the preview
keeps it per assignment, and how `lipdub render` prints it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from engine.pipeline.fit import TrackSignals
from engine.pipeline.render import AssignmentSync, plan_sync
from engine.pipeline.session import FacePlan
from tests.lipsync.previewstub import stub_preparation
from tests.lipsync.test_compose_synth import _speaker

FPS = 25.0
FRAMES = 500  # 20 s


def _rhythm(seed: int) -> np.ndarray:
    """A syllable-rate envelope in 0..1 (smoothed noise, about 4 bumps a second)."""
    x = gaussian_filter1d(np.random.default_rng(seed).normal(size=FRAMES), 1.5)
    return (x - x.min()) / (x.max() - x.min())


def _dub(envelope: np.ndarray) -> TrackSignals:
    energy = -45.0 + 30.0 * envelope + np.random.default_rng(99).normal(0, 1.0, FRAMES)
    return TrackSignals(np.zeros((FRAMES, 1)), envelope > 0.3, energy, FPS)


def _plan(opening: np.ndarray, ok: np.ndarray | None = None, own: tuple[float, float] | None = (0.3, 2.8)) -> FacePlan:
    """A plan whose mouth opens by ``opening`` (0 closed .. 1 the speaker's widest)."""
    _, _, fit, track = _speaker()
    fit = dataclasses.replace(fit, own_sync=own)
    bank_open = fit.shape.code_opening(fit.bank.codes)
    closed, wide = fit.bank.codes[int(np.argmin(bank_open))], fit.bank.codes[int(np.argmax(bank_open))]
    codes = closed[None, :] + np.asarray(opening, np.float64)[:, None] * (wide - closed)[None, :]
    ok = np.ones(FRAMES, bool) if ok is None else ok
    return FacePlan(track, fit, codes, np.where(ok, 0, -1), ok)


def test_a_mouth_that_follows_the_dub_scores_a_clear_match() -> None:
    env = _rhythm(1)
    s = plan_sync(_plan(env), _dub(env), FPS, Path("dub.wav"))
    assert s.z >= 2.0 and s.r > 0.8
    assert (s.face, s.audio_path, s.frames) == ("0", Path("dub.wav"), FRAMES)
    assert s.own_z == pytest.approx(2.8)


def test_an_unrelated_or_still_mouth_scores_low() -> None:
    dub = _dub(_rhythm(1))
    unrelated = plan_sync(_plan(_rhythm(2)), dub, FPS, Path("dub.wav"))
    assert abs(unrelated.z) < 2.0
    still = plan_sync(_plan(np.full(FRAMES, 0.4)), dub, FPS, Path("dub.wav"))
    assert not still.z >= 2.0  # a mouth that never moves follows nothing (not measurable: NaN)
    assert plan_sync(_plan(_rhythm(1), own=None), dub, FPS, Path("dub.wav")).own_z is None


def test_frames_outside_the_plan_are_ignored() -> None:
    env = _rhythm(1)
    opening = env.copy()
    half = FRAMES // 2
    opening[half:] = _rhythm(3)[half:]  # the second half moves to something else...
    ok = np.arange(FRAMES) < half  # ...but the plan changes only the first half
    covered = plan_sync(_plan(opening, ok), _dub(env), FPS, Path("dub.wav"))
    assert covered.z >= 2.0 and covered.frames == half
    everything = plan_sync(_plan(opening), _dub(env), FPS, Path("dub.wav"))
    assert everything.r < covered.r - 0.2  # counting the unplanned half would drag the score down
    nothing = plan_sync(_plan(env, np.zeros(FRAMES, bool)), _dub(env), FPS, Path("dub.wav"))
    assert math.isnan(nothing.z) and nothing.frames == 0
    assert nothing.to_dict()["z"] is None  # JSON has no NaN


def test_project_preview_keeps_the_scores_per_assignment_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pipeline.render as render_mod
    from engine.project import Assignment, DubTrack, FaceIdentity, Project, Video

    calls = stub_preparation(monkeypatch, lambda assignments: [
        AssignmentSync(a.face, a.audio_path, 3.0 + k, 0.5, 2.5, 100) for k, a in enumerate(assignments)])
    project = Project(video=Video(path=tmp_path / "v.mp4"),
                      tracks=[DubTrack(id="t1", path=tmp_path / "de.wav", language="de"),
                              DubTrack(id="t2", path=tmp_path / "fr.wav", language="fr")],
                      identities=[FaceIdentity(id="0"), FaceIdentity(id="1")],
                      assignments=[Assignment("a1", "t1", "0", 0.0, 1.0), Assignment("a2", "t2", "1", 0.0, 1.0),
                                   Assignment("gone", "no-such-track", "1", 0.0, 1.0)])
    preview = render_mod.ProjectPreview(use_library=False)
    assert preview.sync_scores() == {}
    preview.prepare(project)
    scores = preview.sync_scores()
    assert list(scores) == ["a1", "a2"]
    assert (scores["a1"].face, scores["a1"].z) == ("0", 3.0) and (scores["a2"].face, scores["a2"].z) == ("1", 4.0)
    # the same assignment re-created under a new id: no new preparation, the score follows the id
    project.assignments[0] = dataclasses.replace(project.assignments[0], id="a1-again")
    preview.prepare(project)
    assert [len(c["assignments"]) for c in calls] == [2] and list(preview.sync_scores()) == ["a1-again", "a2"]
    preview.close()
    assert preview.sync_scores() == {}


def test_render_cli_prints_each_assignments_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import engine.pipeline.render as render_mod
    from engine.cli import main
    from engine.pipeline.export import ExportResult

    video, dub = tmp_path / "v.mp4", tmp_path / "de.wav"
    video.write_bytes(b"x")
    dub.write_bytes(b"x")
    out = tmp_path / "out.mp4"

    def fake_render(project: Any, out_path: Path, *, on_sync: Any = None, **_kw: Any) -> list[ExportResult]:
        on_sync(None, [AssignmentSync("0", dub, 3.14, 0.5, 2.8, 120), AssignmentSync("1", dub, float("nan"), 0.0, None, 3)])
        return [ExportResult(Path(out_path), 10, 5, 0.4, 1.0)]

    monkeypatch.setattr(render_mod, "project_for_video", lambda video, assignments, *rest: object())
    monkeypatch.setattr(render_mod, "render_project", fake_render)
    assert main(["render", str(video), "--track", str(dub), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lip sync, face 0 with de.wav: 3.1 (the speaker's own voice: 2.8" in text
    assert "lip sync, face 1 with de.wav: not measurable (the speaker's own voice: not measurable" in text
    assert main(["render", str(video), "--track", str(dub), "--out", str(out), "--json"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["event"] == "done" and done["outputs"][0]["path"] == str(out)
    assert done["sync"] == [
        {"language": None, "face": "0", "audio": str(dub), "z": 3.14, "r": 0.5, "own_z": 2.8, "frames": 120},
        {"language": None, "face": "1", "audio": str(dub), "z": None, "r": 0.0, "own_z": None, "frames": 3},
    ]


def test_effective_sample_size_uses_every_lag_up_to_a_quarter() -> None:
    from engine.lipsync.metrics import _autocorr, bartlett_n_eff

    rng = np.random.default_rng(4)
    a, b = np.cumsum(rng.standard_normal(3001)), np.cumsum(rng.standard_normal(3001))
    ca = a - a.mean()
    direct = np.array([np.dot(ca[: len(ca) - k], ca[k:]) for k in range(751)]) / np.dot(ca, ca)
    np.testing.assert_allclose(_autocorr(a, 750), direct, rtol=0, atol=1e-12)
    cb = b - b.mean()
    rb = np.array([np.dot(cb[: len(cb) - k], cb[k:]) for k in range(751)]) / np.dot(cb, cb)
    expected = 3001 / (1 + 2 * np.sum(direct[1:] * rb[1:]))
    assert bartlett_n_eff(a, b) == pytest.approx(np.clip(expected, 4, 3001), rel=1e-10)
    # White noise: about every sample counts.
    assert bartlett_n_eff(rng.standard_normal(4000), rng.standard_normal(4000)) > 3000
