"""Fitted speakers kept on disk: the same fit back, a miss on any change, and banks written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import Cancelled
from engine.lipsync.model import fit_prior
from engine.pipeline.fit import TrackSignals, fit_speaker, target_codes
from engine.pipeline.fitcache import fit_key, load_fit, store_fit
from engine.pipeline.session import FrameComposer, plan_face
from engine.pipeline.tracks import FaceTrack
from engine.runtime.jobs import CancelToken
from tests.lipsync.synthface import face_frame, face_landmarks, write_face_video

N = 110


def _speaker(tmp_path: Path) -> tuple[Path, FaceTrack, TrackSignals]:
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(N) / 4.0))
    lms = np.stack([face_landmarks(o, seed=i % 3) for i, o in enumerate(opening)])
    track = FaceTrack("0", np.arange(N), lms, np.zeros((N, 3)), np.ones(N, bool), raw=lms + 0.5)
    video = write_face_video(tmp_path / "face.avi", lms)
    rng = np.random.default_rng(0)
    design = np.concatenate([opening[:, None] * 4, rng.normal(size=(N, 5))], 1)
    speech = np.ones(N, bool)
    speech[60:80] = False
    return video, track, TrackSignals(design, speech, 20 * opening - 30, 25.0)


def _prior(seed: int) -> object:
    rng = np.random.default_rng(seed)
    entries = []
    for k in range(3):
        x = rng.normal(size=(80, 6))
        entries.append((f"s{k}", x, x[:, 0]))
    return fit_prior(entries)


def test_a_kept_fit_renders_exactly_as_the_fresh_one(tmp_path: Path) -> None:
    video, track, signals = _speaker(tmp_path)
    prior = _prior(1)
    bank = tmp_path / "bank.npy"
    fresh = fit_speaker(video, track, signals, signals.speech, prior=prior, bank_path=bank)  # type: ignore[arg-type]
    key = fit_key("video", track, signals.speech, prior, 8)  # type: ignore[arg-type]
    store_fit(key, fresh, bank, directory=tmp_path / "fits")
    kept = load_fit(key, track, N, directory=tmp_path / "fits")
    assert kept is not None and kept.model.kind == fresh.model.kind == "speaker+prior"
    assert kept.lag_frames == fresh.lag_frames and kept.own_sync == fresh.own_sync
    assert fresh.speech_speed is not None and kept.speech_speed == fresh.speech_speed
    np.testing.assert_array_equal(kept.model.predict(signals.design), fresh.model.predict(signals.design))
    a, b = target_codes(fresh, signals, 25.0), target_codes(kept, signals, 25.0)
    np.testing.assert_array_equal(a, b)
    pa, pb = plan_face(track, fresh, a), plan_face(track, kept, b)
    np.testing.assert_array_equal(pa.path, pb.path)
    frame = face_frame(track.landmarks[20], seed=20)
    np.testing.assert_array_equal(FrameComposer([pa])(20, frame), FrameComposer([pb])(20, frame))


def test_any_change_the_fit_depends_on_is_a_miss(tmp_path: Path) -> None:
    _video, track, signals = _speaker(tmp_path)
    base = fit_key("video", track, signals.speech, None, 8)
    moved = FaceTrack(track.identity, track.frames, track.landmarks + 1.0, track.pose, track.usable, raw=track.raw)
    other_speech = signals.speech.copy()
    other_speech[:5] = False
    keys = {
        base,
        fit_key("other video", track, signals.speech, None, 8),
        fit_key("video", moved, signals.speech, None, 8),
        fit_key("video", track, other_speech, None, 8),
        fit_key("video", track, signals.speech, _prior(1), 8),  # type: ignore[arg-type]
        fit_key("video", track, signals.speech, _prior(2), 8),  # type: ignore[arg-type]
        fit_key("video", track, signals.speech, None, 6),
    }
    assert len(keys) == 7
    assert fit_key("video", track, signals.speech, None, 8) == base
    assert load_fit(base, track, N, directory=tmp_path / "fits") is None


def test_a_cancelled_fit_leaves_the_earlier_bank_and_no_temporary_file(tmp_path: Path) -> None:
    video, track, signals = _speaker(tmp_path)
    bank = tmp_path / "bank.npy"
    first = fit_speaker(video, track, signals, signals.speech, bank_path=bank)
    before = np.array(first.bank.crops)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        fit_speaker(video, track, signals, signals.speech, bank_path=bank, cancel=token)
    assert sorted(p.name for p in tmp_path.glob("bank*")) == ["bank.npy"]
    np.testing.assert_array_equal(np.load(bank), before)
    np.testing.assert_array_equal(np.asarray(first.bank.crops), before)  # its memory map still reads


def test_a_kept_fit_with_a_capped_bank_comes_back_whole(tmp_path: Path) -> None:
    video, track, signals = _speaker(tmp_path)
    bank = tmp_path / "bank.npy"
    fresh = fit_speaker(video, track, signals, signals.speech, bank_path=bank, bank_budget=40)
    assert len(fresh.bank) <= 40 < N
    key = fit_key("video", track, signals.speech, None, 8)
    store_fit(key, fresh, bank, directory=tmp_path / "fits")
    kept = load_fit(key, track, N, directory=tmp_path / "fits")
    assert kept is not None
    for name in ("frames", "codes", "pose", "landmarks", "origins", "triangles"):
        np.testing.assert_array_equal(getattr(kept.bank, name), getattr(fresh.bank, name))
    np.testing.assert_array_equal(np.asarray(kept.bank.crops), np.asarray(fresh.bank.crops))


def test_a_bank_replaced_by_another_fit_of_the_same_size_is_a_miss(tmp_path: Path) -> None:
    """The bank file is named by video and face: a later fit (other frames, same count) may replace
    it, and the kept fit must not then read the other fit's crops."""
    video, track, signals = _speaker(tmp_path)
    bank = tmp_path / "bank.npy"
    first = fit_speaker(video, track, signals, signals.speech, bank_path=bank, train=np.arange(N) < 60)
    key = fit_key("video", track, signals.speech, None, 8)
    store_fit(key, first, bank, directory=tmp_path / "fits")
    assert load_fit(key, track, N, directory=tmp_path / "fits") is not None
    later = fit_speaker(video, track, signals, signals.speech, bank_path=bank, train=np.arange(N) >= N - 60)
    assert len(later.bank) == len(first.bank)
    assert load_fit(key, track, N, directory=tmp_path / "fits") is None


def _counted_fits(shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], Path, list]:
    """Fits cached under ``tmp_path`` and counted as they run; a real clip and its dub assignment."""
    import engine.pipeline.fitcache as fitcache
    import engine.pipeline.render as render

    monkeypatch.setattr(fitcache, "cache_dir", lambda *parts: tmp_path.joinpath(*parts))
    calls: list[int] = []
    real = render.fit_speaker

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "fit_speaker", counted)
    video = shared_media / "video" / "vox_beard_full.mp4"
    return calls, video, [render.TrackAssignment(shared_media / "audio" / "dub_german1.wav")]


@pytest.mark.media
def test_prepare_render_fits_a_speaker_once_for_preview_and_export(
    shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preview and the export (run in another process, with no fits in memory) share one fit."""
    import engine.pipeline.render as render

    calls, video, job = _counted_fits(shared_media, tmp_path, monkeypatch)
    first = render.prepare_render(video, job, use_library=False)
    again = render.prepare_render(video, job, use_library=False)  # nothing carried over in memory
    assert len(calls) == 1
    np.testing.assert_array_equal(first.plans[0].path, again.plans[0].path)
    np.testing.assert_array_equal(first.plans[0].codes, again.plans[0].codes)


@pytest.mark.media
def test_a_render_with_its_landmarks_in_files_is_the_render_with_them_in_memory(
    shared_media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SPILL_LANDMARKS_ABOVE_BYTES the tracks' landmarks go to temporary files: the fit's cache
    key, the plan and the rendered frames are the ones made with the landmarks in memory."""
    import engine.pipeline.render as render
    from engine.runtime.rowfile import RowFile

    calls, video, job = _counted_fits(shared_media, tmp_path, monkeypatch)
    held = render.prepare_render(video, job, use_library=False)
    monkeypatch.setattr(render, "SPILL_LANDMARKS_ABOVE_BYTES", 0)
    spilled = render.prepare_render(video, job, use_library=False)
    assert isinstance(spilled.plans[0].track.landmarks, RowFile)
    assert not isinstance(held.plans[0].track.landmarks, RowFile)
    assert len(calls) == 1  # the same fit key: taken from the cache
    np.testing.assert_array_equal(held.plans[0].path, spilled.plans[0].path)
    np.testing.assert_array_equal(held.plans[0].codes, spilled.plans[0].codes)
    a, b = render.open_session(held), render.open_session(spilled)
    try:
        for i in (3, 4, 40, 90):
            np.testing.assert_array_equal(a.render_frame(i)[1], b.render_frame(i)[1])
    finally:
        a.close()
        b.close()
