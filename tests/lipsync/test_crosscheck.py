"""The eval's second opinion: the independent landmarker, the dubbed measures it feeds, the summary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from engine.pipeline.crosscheck import IndependentLandmarker, opening68
from engine.pipeline.evaluate import dub_for, dub_measures, format_table, list_clips, list_dubs, summary


def _points68(gap: float, iod: float) -> np.ndarray:
    p = np.zeros((68, 2))
    p[36:42] = [-iod / 2, 0.0]
    p[42:48] = [iod / 2, 0.0]
    for upper, lower, x in ((61, 67, -5.0), (62, 66, 0.0), (63, 65, 5.0)):
        p[upper] = [x, 60.0]
        p[lower] = [x, 60.0 + gap]
    return p


def test_opening68_is_the_inner_lip_gap_over_the_eye_distance() -> None:
    assert opening68(_points68(10.0, 100.0)) == np.float64(0.1)
    both = opening68(np.stack([_points68(0.0, 80.0), _points68(20.0, 80.0)]))
    np.testing.assert_allclose(both, [0.0, 0.25])


def test_landmarker_finds_no_face_in_a_blank_frame() -> None:
    lm = IndependentLandmarker()
    frame = np.full((240, 320, 3), 128, np.uint8)
    near = np.array([[100.0, 60.0], [220.0, 200.0]])
    assert lm.landmarks(frame, near) is None
    assert np.isnan(lm.opening(frame, near))
    assert lm.landmarks(frame, np.full((2, 2), np.nan)) is None


def _signals(energy: np.ndarray, speech: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(energy_db=energy, speech=speech)


def test_dub_measures_score_a_render_that_follows_the_dub_and_rests_in_its_silence() -> None:
    fps, n = 25.0, 500
    rng = np.random.default_rng(3)
    t = np.arange(n) / fps
    own_speech = np.ones(n, bool)
    own_energy = -30 + 10 * np.sin(2 * np.pi * 4.0 * t) + rng.normal(0, 1, n)
    real = 0.02 + 0.1 * np.clip((own_energy + 40) / 20, 0, 1)
    dub_speech = np.ones(n, bool)
    dub_speech[200:260] = False  # 2.4 s of silence in the dub
    dub_energy = -30 + 10 * np.sin(2 * np.pi * 3.1 * t + 1.0) + rng.normal(0, 1, n)
    dub_energy[~dub_speech] = -60.0
    follows = np.where(dub_speech, 0.02 + 0.1 * np.clip((dub_energy + 40) / 20, 0, 1), 0.015)
    face = np.ones(n, bool)
    good = dub_measures(follows, real, _signals(own_energy, own_speech), _signals(dub_energy, dub_speech), fps, face)
    copied = dub_measures(real, real, _signals(own_energy, own_speech), _signals(dub_energy, dub_speech), fps, face)
    assert good["silence_frames"] == 60
    assert good["rest_rate"] == 1.0
    assert copied["rest_rate"] < 0.5, "the original keeps talking through the dub's silence"
    assert good["z_render"] >= 2.0 > copied["z_render"]
    assert good["z_own"] == copied["z_own"] >= 2.0
    # Unmeasured frames (NaN: no face found) are left out, not counted as open.
    holes = follows.copy()
    holes[210:220] = np.nan
    assert dub_measures(holes, real, _signals(own_energy, own_speech), _signals(dub_energy, dub_speech), fps,
                        face)["silence_frames"] == 50


def test_summary_counts_each_measurer_apart() -> None:
    base = {"seconds": 12.0, "held_frames": 90, "r_target": 0.6, "lmd_ratio": 0.8}
    rows = [
        {**base, "clip": "a", "r_open": 0.7, "z_own": 3.0, "z_render": 1.5, "rest_rate": 0.5,
         "r_prior_own": 0.3, "r_prior_render": 0.4,
         "r_open_ind": 0.6, "z_own_ind": 3.0, "z_render_ind": 2.5, "rest_rate_ind": 1.0,
         "r_prior_own_ind": 0.3, "r_prior_render_ind": 0.6},
        {**base, "clip": "b", "r_open": 0.5, "z_own": 1.0, "z_render": 3.0, "rest_rate": float("nan"),
         "r_prior_own": 0.3, "r_prior_render": 0.3,
         "r_open_ind": 0.4, "z_own_ind": 2.5, "z_render_ind": 2.0, "rest_rate_ind": float("nan"),
         "r_prior_own_ind": 0.3, "r_prior_render_ind": 0.3},
    ]
    s = summary(rows)
    assert (s["sync_ok"], s["sync_eligible"]) == (0.0, 1.0)
    assert (s["sync_ok_ind"], s["sync_eligible_ind"]) == (2.0, 2.0)
    assert (s["rest_ok"], s["rest_clips"], s["rest_ok_ind"], s["rest_clips_ind"]) == (0.0, 1.0, 1.0, 1.0)
    assert (s["prior_ok"], s["prior_ok_ind"]) == (2.0, 1.0)
    assert np.isclose(s["r_open_ind_all"], 0.5)
    table = format_table(rows)
    assert "engine's mesh: opening r all +0.600" in table
    assert "independent landmarker: opening r all +0.500, >= 10 s +0.500 (2 clips measured); dubbed z >= 2 " \
           "on 2/2 eligible; rest >= 95% on 1/1; r_prior <= own + 0.2 on 1/2" in table
    # The independent r is weighted by the frames it measured.
    rows[0]["held_frames_ind"], rows[1]["held_frames_ind"] = 30, 90
    assert np.isclose(summary(rows)["r_open_ind_all"], (0.6 * 30 + 0.4 * 90) / 120)
    # Rows from a run without the second measurer print no line and no columns for it.
    plain = [{k: v for k, v in r.items() if not k.endswith("_ind")} for r in rows]
    assert "independent landmarker" not in format_table(plain)
    assert "_ind" not in format_table(plain)


def test_a_run_on_a_few_clips_renders_the_dubs_of_the_full_run(tmp_path: Path) -> None:
    (tmp_path / "video").mkdir()
    (tmp_path / "audio").mkdir()
    for name in ("a.mp4", "b.mp4", "c.mov"):
        (tmp_path / "video" / name).touch()
    for name in ("x.wav", "y.mp3", "notes.txt"):
        (tmp_path / "audio" / name).touch()
    every, dubs = list_clips(tmp_path), list_dubs(tmp_path)
    assert [d.name for d in dubs] == ["x.wav", "y.mp3"]
    full = {c.name: dub_for(c, every, dubs) for c in every}
    only_b = list_clips(tmp_path, ["b"])
    assert [c.name for c in only_b] == ["b.mp4"]
    assert dub_for(only_b[0], every, dubs) == full["b.mp4"] == tmp_path / "audio" / "y.mp3"
    assert dub_for(only_b[0], every, []) is None
