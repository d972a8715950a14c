"""End to end on the smallest real clip: render, timing, untouched pixels, self-reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.lipsync.geometry import mouth_opening

pytestmark = [pytest.mark.media, pytest.mark.slow]

CLIP = "vox_beard_full.mp4"
DUB = "dub_german2.wav"


@pytest.fixture(scope="module")
def clip(shared_media: Path):  # type: ignore[no-untyped-def]
    from engine.pipeline.evaluate import load_clip

    c = load_clip(shared_media / "video" / CLIP)
    assert c is not None, "the clip has one clearly visible face"
    return c


def test_self_reconstruction_follows_the_held_out_audio(clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.pipeline.evaluate import FrameStats, Reanalyser
    from engine.pipeline.fit import fit_speaker, target_codes
    from engine.pipeline.session import plan_face, render_frames

    n = clip.n
    split = round(n * 0.7)
    fit = fit_speaker(clip.path, clip.track, clip.signals, clip.speaking, train=np.arange(n) < split,
                      bank_path=tmp_path / "bank.npy")
    assert fit.bank.frames.max() < split, "the texture bank holds training frames only"
    codes = target_codes(fit, clip.signals, clip.fps)
    plan = plan_face(clip.track, fit, codes)
    _, real, _ = clip.track.dense(n)
    stats = FrameStats()
    re = Reanalyser(clip.fps, clip.size)
    seen: list[int] = []

    def on_frame(i, original, result, details) -> None:  # type: ignore[no-untyped-def]
        stats.add(original, result, details, real[i])
        re.add(i, float(clip.frame_times[i]), result)
        seen.append(i)

    render_frames(clip.path, [plan], lambda i, f: None, split, n, on_frame=on_frame)
    assert seen == list(range(split, n))
    assert stats.untouched == 1.0, "every pixel outside the mask is the decoded source pixel"
    assert stats.changed_frames >= 0.9 * (n - split)
    rendered = re.landmarks(n)[split:]
    ok = np.isfinite(rendered).all(axis=(1, 2))
    assert ok.mean() > 0.9, "the rendered face is still found by the face analysis"
    r = np.corrcoef(mouth_opening(rendered[ok]), mouth_opening(real[split:][ok]))[0, 1]
    # Loose: a model that ignores the audio scores near 0 on these 35 frames.
    assert r > 0.3, f"re-measured opening follows the real one only at r={r:.2f}"


def test_render_cli_is_frame_complete_and_timing_exact(shared_media: Path, tmp_path: Path) -> None:
    from engine.cli import main
    from engine.media.probe import probe

    out = tmp_path / "dubbed.mp4"
    rc = main(["render", str(shared_media / "video" / CLIP), "--track", str(shared_media / "audio" / DUB),
               "--out", str(out), "--no-library"])
    assert rc == 0 and out.is_file()
    src = probe(shared_media / "video" / CLIP, use_cache=False).require_video()
    dst = probe(out, use_cache=False).require_video()
    assert dst.frame_count == src.frame_count
    assert (dst.width, dst.height) == (src.width, src.height)
    np.testing.assert_allclose(dst.frame_times - dst.frame_times[0], src.frame_times - src.frame_times[0], atol=1e-3)
    info = probe(out, use_cache=False)
    assert info.audio, "the dub is muxed"


def test_project_preview_renders_assigned_range_only(clip, shared_media: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.pipeline.render import ProjectPreview
    from engine.project.model import Assignment, DubTrack, Project, Video

    dur = float(clip.frame_times[-1] - clip.frame_times[0])
    project = Project(
        video=Video(clip.path),
        tracks=[DubTrack("t1", shared_media / "audio" / DUB, language="de")],
        assignments=[Assignment("a1", "t1", clip.track.identity, 0.0, dur / 2)],
    )
    preview = ProjectPreview(use_library=False)
    try:
        first = clip.n // 4
        original, result = preview.render_frame(project, first)
        again, _ = preview.render_frame(project, first + 1)
        assert original.shape == result.shape == again.shape
        assert not np.array_equal(original, result), "inside the assigned range the mouth changes"
        late = clip.n - 3  # after the assignment ends: untouched
        o2, r2 = preview.render_frame(project, late)
        assert np.array_equal(o2, r2)
    finally:
        preview.close()


def test_independent_landmarker_agrees_with_the_tracker_on_the_source(clip) -> None:  # type: ignore[no-untyped-def]
    """The eval's second measurer reads the same mouth as the engine's own tracker on real footage
    (it would be no check at all if it read something else)."""
    from engine.lipsync.geometry import LIPS_OUTER, interocular
    from engine.media.reader import VideoReader
    from engine.pipeline.crosscheck import IndependentLandmarker

    ok, real, _ = clip.track.dense(clip.n)
    lm = IndependentLandmarker()
    ind = np.full(clip.n, np.nan)
    with VideoReader(clip.path, pixel_format="bgr24") as reader:
        for i, frame in reader.iter_frames(0, clip.n):
            if not ok[i]:
                continue
            p = lm.landmarks(frame, real[i])
            if p is None:
                continue
            ind[i] = lm.opening(frame, real[i])
            # Image pixels, on the same face: the mouths and the eye distances line up.
            iod = float(interocular(real[i]))
            gap = np.linalg.norm(p[48:68].mean(0) - real[i][list(LIPS_OUTER)].mean(0))
            assert gap < 0.15 * iod, f"frame {i}: dlib's mouth is {gap / iod:.2f} eye distances off"
            dlib_iod = np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0))
            assert 0.8 < dlib_iod / iod < 1.25, f"frame {i}: eye distance {dlib_iod:.0f} px against {iod:.0f}"
    found = np.isfinite(ind) & ok
    assert found.sum() >= 0.9 * ok.sum(), "dlib finds the face wherever the tracker has it"
    r = np.corrcoef(ind[found], mouth_opening(real[found]))[0, 1]
    assert r > 0.7, f"the two landmarkers' openings agree only at r={r:.2f}"


def test_eval_row_has_independent_columns_only_when_measured(clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.pipeline.crosscheck import IndependentLandmarker
    from engine.pipeline.evaluate import self_reconstruction

    plain = self_reconstruction(clip, None, tmp_path, None)
    assert not [k for k in plain if k.endswith("_ind") or k.startswith("ind_")]
    both = self_reconstruction(clip, None, tmp_path, None, independent=IndependentLandmarker())
    assert both["ind_found_self"] > 0.9
    assert 0 < both["held_frames_ind"] <= clip.n - round(clip.n * 0.7)
    assert np.isfinite(both["r_open_ind"])
    assert both["r_open"] == plain["r_open"], "the second measure does not change the first"
