"""Face analysis on the real clips in ../shared/media/video (skipped when absent)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import av.video.stream
import cv2
import numpy as np
import pytest

from engine.errors import Cancelled
from engine.faces import FaceAnalysis, analyse, cache_path_for, get_backend
from engine.faces.landmarks import MOUTH
from engine.media import VideoReader
from engine.runtime.jobs import CancelToken, Progress

CLIPS = [
    "hdtf_katiehill.mp4", "latentsync_demo1_portrait.mp4", "latentsync_demo3_portrait.mp4",
    "presenter_kim_1080p.mp4", "radio_glasses.mp4", "retalking_face_1.mp4", "retalking_face_2.mp4",
    "retalking_face_3.mp4", "retalking_face_4.mp4", "retalking_face_5.mp4", "vox_beard_full.mp4",
    "vox_beard_threequarter.mp4", "vox_goatee.mp4", "vox_threequarter.mp4",
]

_results: dict[str, FaceAnalysis] = {}


def _analysed(shared_media: Path, name: str) -> FaceAnalysis:
    if name not in _results:
        _results[name] = analyse(shared_media / "video" / name)
    return _results[name]


def _frames(path: Path, stop: int | None = None) -> Iterator[np.ndarray]:
    with VideoReader(path) as r:
        for _, rgb in r.iter_frames(0, stop):
            yield rgb


def _write(path: Path, frames: Sequence[np.ndarray], fps: int = 25, rotation: int = 0) -> Path:
    """Encode RGB frames; ``rotation`` (clockwise degrees) stores them turned, as phones do."""
    k = (rotation // 90) % 4
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2  # 4:2:0 needs even sizes
    frames = [f[:h, :w] for f in frames]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height = (h, w) if k % 2 else (w, h)
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "18", "preset": "ultrafast"}
        if k:
            vs.set_display_rotation(-90 * k)
        for f in frames:
            img = np.ascontiguousarray(np.rot90(f, k)) if k else f
            c.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(vs.encode(None))
    return path


@pytest.mark.parametrize("name", CLIPS)
def test_single_person_clip_gives_one_identity_most_of_the_time(shared_media: Path, name: str) -> None:
    result = _analysed(shared_media, name)
    assert len(result.identities) == 1, [i.summary() for i in result.identities]
    person = result.identities[0]
    assert len(person.frames) >= 0.95 * result.frame_count
    assert person.landmarks.shape == (len(person.frames), 468, 2) and person.landmarks.dtype == np.float32
    assert person.embedding.shape == (128,)
    assert person.thumbnail.shape == (96, 96, 3) and person.thumbnail.dtype == np.uint8
    assert np.isfinite(person.mouth_opening).all() and (person.mouth_opening >= 0).all()
    faces = result.faces_at(int(person.frames[len(person.frames) // 2]))
    assert len(faces) == 1 and faces[0].identity == person.id


@pytest.mark.parametrize("name", ["retalking_face_1.mp4", "vox_threequarter.mp4", "latentsync_demo1_portrait.mp4",
                                  "presenter_kim_1080p.mp4"])
def test_mouth_points_lie_inside_the_detectors_face_box(shared_media: Path, name: str) -> None:
    # the detector is a separate model from the landmarker: its box is an independent check
    result = _analysed(shared_media, name)
    person = result.identities[0]
    backend = get_backend()
    path = shared_media / "video" / name
    for k in (len(person.frames) // 4, 3 * len(person.frames) // 4):
        index = int(person.frames[k])
        with VideoReader(path) as r:
            dets = backend.detect(r.frame(index))
        assert len(dets) == 1
        box = dets[0].box
        mouth = person.landmarks[k][list(MOUTH)]
        assert (mouth[:, 0] > box[0]).all() and (mouth[:, 0] < box[2]).all()
        assert (mouth[:, 1] > box[1]).all() and (mouth[:, 1] < box[3]).all()
        # and the mouth is in the lower half of the box, where a mouth belongs
        assert mouth[:, 1].mean() > (box[1] + box[3]) / 2


def test_a_b_a_with_black_frames_gives_two_identities(shared_media: Path, tmp_path: Path) -> None:
    a = list(_frames(shared_media / "video" / "vox_goatee.mp4", 120))
    b = [cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA)
         for f in _frames(shared_media / "video" / "retalking_face_1.mp4", 60)]
    black = [np.zeros_like(a[0])] * 6
    # the second A shot is framed differently (closer), as after a real cut
    closer = [cv2.resize(f[20:204, 20:204], (224, 224), interpolation=cv2.INTER_CUBIC) for f in a[60:120]]
    seq = a[:30] + black + a[30:60] + b + closer
    path = _write(tmp_path / "aba.mp4", seq)
    result = analyse(path, use_cache=False)
    assert len(result.identities) == 2, [i.summary() for i in result.identities]
    first, second = result.identities
    ranges = first.frame_ranges
    # A: before and after the black frames, then again after B; B in between
    assert ranges[0][0] <= 1 and ranges[-1][1] >= len(seq) - 2
    assert any(s >= 126 for s, _ in ranges), ranges
    assert second.frame_ranges[0][0] >= 66 and second.frame_ranges[-1][1] <= 126
    # the black frames did not split the first shot's track
    shot1 = first.track_ids[first.frames < 66]
    assert len(set(shot1.tolist())) == 1
    assert len(result.cuts) >= 2


def test_rotated_phone_video_is_analysed_upright(shared_media: Path, tmp_path: Path) -> None:
    # portrait picture (pad a clip to 224x320), stored turned 90 degrees with a display matrix
    frames = [cv2.copyMakeBorder(f, 48, 48, 0, 0, cv2.BORDER_REPLICATE)
              for f in _frames(shared_media / "video" / "vox_beard_full.mp4", 40)]
    path = _write(tmp_path / "phone.mp4", frames, rotation=90)
    result = analyse(path, use_cache=False)
    assert (result.width, result.height) == (224, 320)
    assert len(result.identities) == 1
    person = result.identities[0]
    assert len(person.frames) >= 38
    assert abs(float(np.median(person.pose[:, 2]))) < 20  # upright: eye line near horizontal


def test_video_without_faces_gives_no_identities(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(30):
        img = np.zeros((120, 160, 3), np.uint8)
        img[:] = (40 + i, 90, 140)
        cv2.rectangle(img, (10 + 2 * i, 30), (60 + 2 * i, 90), (200, 180, 30), -1)
        img = np.clip(img + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)
        frames.append(img)
    path = _write(tmp_path / "nofaces.mp4", frames)
    result = analyse(path, use_cache=False)
    assert result.identities == [] and "no faces" in result.message
    assert result.faces_at(3) == []
    assert result.frame_count == 30


def test_cache_round_trip_and_reuse(shared_media: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "short.mp4", list(_frames(shared_media / "video" / "radio_glasses.mp4", 30)))
    reports: list[Progress] = []
    first = analyse(path, progress=reports.append)
    assert reports and reports[-1].fraction == 1.0
    backend = get_backend()
    cache = cache_path_for(path, backend)
    assert cache.is_file() and cache.with_suffix(".json").is_file()

    class Refusing:
        """A backend that fails if asked to analyse: the cache must answer instead."""

        name, version, same_person_distance = backend.name, backend.version, backend.same_person_distance

        def __getattr__(self, item: str) -> object:
            raise AssertionError(f"re-analysed ({item})")

    again = analyse(path, backend=Refusing())  # type: ignore[arg-type]
    assert len(again.identities) == len(first.identities) == 1
    for name in ("frames", "landmarks", "landmarks_raw", "pose", "flags", "embedding", "thumbnail"):
        np.testing.assert_array_equal(getattr(again.identities[0], name), getattr(first.identities[0], name))
    assert again.identities[0].time_ranges == first.identities[0].time_ranges


def test_cancel_stops_the_analysis(shared_media: Path) -> None:
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.done >= 5:
            token.cancel()

    with pytest.raises(Cancelled):
        analyse(shared_media / "video" / "vox_goatee.mp4", progress=progress, cancel=token, use_cache=False)


def test_two_people_side_by_side_stay_two_identities(shared_media: Path, tmp_path: Path) -> None:
    left = list(_frames(shared_media / "video" / "vox_goatee.mp4", 80))
    right = list(_frames(shared_media / "video" / "vox_beard_full.mp4", 80))
    path = _write(tmp_path / "two.mp4", [np.hstack([a, b]) for a, b in zip(left, right, strict=True)])
    result = analyse(path, use_cache=False)
    assert len(result.identities) == 2, [i.summary() for i in result.identities]
    centres = []
    for person in result.identities:
        assert len(person.frames) >= 76
        centres.append(float(np.median(person.landmarks[:, list(MOUTH), 0])))
    assert sorted(c < 224 for c in centres) == [False, True]  # one mouth in each half
    assert all(len(result.faces_at(i)) == 2 for i in (10, 40, 70))


def test_face_cut_by_the_frame_edge_is_tracked_and_flagged(shared_media: Path, tmp_path: Path) -> None:
    from engine.faces import FLAG_EDGE

    # crop away the left ~40% of the face
    frames = [cv2.resize(f[100:600, 390:700], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
              for f in _frames(shared_media / "video" / "retalking_face_1.mp4", 40)]
    result = analyse(_write(tmp_path / "edge.mp4", frames), use_cache=False)
    assert len(result.identities) == 1
    person = result.identities[0]
    assert len(person.frames) >= 38
    assert (person.flags & FLAG_EDGE).astype(bool).mean() > 0.9


def test_small_face_in_a_720p_frame_is_found(shared_media: Path, tmp_path: Path) -> None:
    # a ~50 px face in a 1280x720 frame: too small for the whole-frame detector pass alone
    background = np.full((720, 1280, 3), (120, 110, 100), np.uint8)
    frames = []
    for f in _frames(shared_media / "video" / "retalking_face_1.mp4", 30):
        img = background.copy()
        img[500:640, 900:1040] = cv2.resize(f, (140, 140), interpolation=cv2.INTER_AREA)
        frames.append(img)
    result = analyse(_write(tmp_path / "small.mp4", frames), use_cache=False)
    assert len(result.identities) == 1
    person = result.identities[0]
    assert len(person.frames) >= 29 and person.mean_face_size < 70
    mouth = person.landmarks[:, list(MOUTH)]
    assert (mouth[..., 0] > 900).all() and (mouth[..., 0] < 1040).all()
    assert (mouth[..., 1] > 500).all() and (mouth[..., 1] < 640).all()


def test_person_swap_without_a_detectable_cut_splits_the_track(shared_media: Path, tmp_path: Path) -> None:
    # two people pasted at the same spot of one static background: the frame hardly changes at the
    # swap (no cut), the mesh follows straight onto the new face; identity checks must split it
    from engine.faces import FaceTrackingSession

    background = np.full((360, 640, 3), (100, 120, 90), np.uint8)

    def paste(f: np.ndarray) -> np.ndarray:
        img = background.copy()
        img[80:240, 240:400] = cv2.resize(f[20:200, 20:200], (160, 160), interpolation=cv2.INTER_AREA)
        return img

    seq = [paste(f) for f in _frames(shared_media / "video" / "vox_goatee.mp4", 60)]
    seq += [paste(f) for f in _frames(shared_media / "video" / "vox_beard_full.mp4", 60)]
    session = FaceTrackingSession(get_backend(), 25.0, 640, 360)
    for i, rgb in enumerate(seq):
        session.process(i, i / 25, rgb)
    identities, cuts = session.finish(np.arange(len(seq)) / 25)
    assert cuts == []  # the cut detector did not see it: the identity check did
    assert len(identities) == 2
    first, second = identities
    assert first.frame_ranges[0][0] == 0 and abs(first.frame_ranges[-1][1] - 59) <= 2
    assert abs(second.frame_ranges[0][0] - 60) <= 2 and second.frame_ranges[-1][1] == 119


def test_unwritable_cache_does_not_fail_the_analysis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: FaceAnalysis, path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(FaceAnalysis, "save", refuse)
    path = _write(tmp_path / "plain.mp4", [np.full((64, 64, 3), 80 + i, np.uint8) for i in range(5)])
    result = analyse(path)
    assert result.frame_count == 5 and result.identities == []


def test_averaged_mesh_reading_moves_less_with_the_crop(shared_media: Path) -> None:
    """The tracked landmarks are the mean of four readings through shifted crops: nudging the crop
    (as the tracker's ROI does from frame to frame) moves that mean's lip gap less than one reading's."""
    from engine.faces.builtin import FaceMesh, roi_from_landmarks
    from engine.faces.types import Roi
    from engine.lipsync.geometry import mouth_opening

    mesh = FaceMesh()
    single_spread, averaged_spread = [], []
    for name in ("vox_goatee.mp4", "retalking_face_2.mp4"):
        ident = _analysed(shared_media, name).identities[0]
        rows = {int(ident.frames[i]): i for i in range(0, min(200, len(ident.frames)), 5)}
        with VideoReader(shared_media / "video" / name) as r:
            for f, rgb in r.iter_frames_at(sorted(rows)):
                roi = roi_from_landmarks(np.asarray(ident.landmarks[rows[f]], np.float64))
                nudged = [Roi(roi.cx + dx * roi.size, roi.cy + dy * roi.size, roi.size, roi.angle)
                          for dx, dy in ((0, 0), (0.02, 0.01), (-0.015, 0.02), (0.01, -0.02), (-0.02, -0.01))]
                single = [mouth_opening(mesh.run(rgb, q).points[None, :, :2])[0] for q in nudged]
                averaged = [mouth_opening(mesh.run_averaged(rgb, q).points[None, :, :2])[0] for q in nudged]
                single_spread.append(np.std(single))
                averaged_spread.append(np.std(averaged))
    assert len(single_spread) == 65  # 40 + 25 frames
    ratio = np.mean(averaged_spread) / np.mean(single_spread)
    assert ratio < 0.85, f"averaged / single spread {ratio:.3f} (0.756 when written; one reading gives 1)"
