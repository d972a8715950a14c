"""Frame-accurate decode: frame N is frame N after seeks in any order, for CFR, VFR, rotated and odd sizes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from engine.media import MediaError, VideoReader, probe, read_frame
from tests.conftest import VFR_TIMES
from tests.synth import read_index


def _random_order(n: int, seed: int = 0) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    # plus the hard cases: backwards by one, the very end, repeated
    return [*order, n - 1, 0, n - 1, n - 2, n - 3, 5, 4, 3, 3]


@pytest.mark.parametrize("name", ["video_25fps", "video_ntsc", "video_vfr", "video_rotated", "video_odd"])
def test_random_access_returns_the_requested_frame(name: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(name)
    with VideoReader(path, cache_frames=4) as r:
        assert len(r) > 10
        for i in _random_order(len(r)):
            assert read_index(r.frame(i)) == i, f"{name}: asked for frame {i}"


@pytest.mark.parametrize("name", ["video_25fps", "video_vfr", "video_rotated"])
def test_iter_frames_is_sequential_and_complete(name: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(name)
    with VideoReader(path) as r:
        got = [(i, read_index(f)) for i, f in r.iter_frames()]
        assert got == [(i, i) for i in range(len(r))]
        part = [(i, read_index(f)) for i, f in r.iter_frames(7, 19)]
        assert part == [(i, i) for i in range(7, 19)]
        assert [i for i, _ in r.iter_frames(3, 20, step=5)] == [3, 8, 13, 18]


@pytest.fixture
def seek_log(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The keyframes the decoders position themselves at, in order (0: read from the start)."""
    from engine.media import reader as reader_mod

    seeks: list[int] = []
    original = reader_mod._Decoder._seek_keyframe

    def counting(self, k: int) -> None:  # type: ignore[no-untyped-def]
        seeks.append(k)
        original(self, k)

    monkeypatch.setattr(reader_mod._Decoder, "_seek_keyframe", counting)
    return seeks


def test_sequential_reads_do_not_seek(video_25fps: Path, seek_log: list[int]) -> None:
    with VideoReader(video_25fps, cache_frames=0) as r:
        for i in range(len(r)):
            assert read_index(r.frame(i)) == i
    assert seek_log == [0]  # the initial positioning only


@pytest.mark.parametrize("name", ["video_25fps", "video_vfr", "video_rotated"])
def test_iter_frames_at_gives_exactly_the_frames_asked_for(name: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(name)
    with VideoReader(path) as r:
        n = len(r)
        want = [n - 1, 0, 1, 2, 5, 40, 41, 3, 40, 17, n + 5, -1]  # any order, repeats, out of range
        got = [(i, read_index(f)) for i, f in r.iter_frames_at(want)]
        expect = sorted({i for i in want if 0 <= i < n})
        assert got == [(i, i) for i in expect]
        assert list(r.iter_frames_at([])) == []
        assert not r.warnings


def test_iter_frames_at_seeks_over_gaps_and_converts_only_wanted_frames(
        video_25fps: Path, seek_log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[int] = []
    original_convert = VideoReader._to_array

    def converting(self, frame):  # type: ignore[no-untyped-def]
        arr = original_convert(self, frame)
        converted.append(read_index(arr))
        return arr

    monkeypatch.setattr(VideoReader, "_to_array", converting)
    with VideoReader(video_25fps) as r:
        # Keyframes every 12 frames: from frame 3 to 40 there are two, so the reader seeks to 36.
        got = [i for i, _ in r.iter_frames_at([1, 2, 10, 40, 41])]
    assert got == [1, 2, 10, 40, 41]
    assert converted == got  # the frames in between were decoded, not converted
    assert seek_log == [0, 36]  # the start, then over the gap; 2 -> 10 is read forward


@pytest.mark.parametrize("how", ["fails", "lands late"])
def test_iter_frames_at_reads_forward_once_a_seek_fell_back_to_the_start(
        tmp_path: Path, seek_log: list[int], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A file that cannot seek, or whose seeks land past the frame asked for (byte-position seeking,
    open GOPs), is read from the start again; from then on the sparse read goes forward instead of
    seeking (and restarting) at each gap."""
    import av

    from tests.synth import make_video

    path = make_video(tmp_path / "gop12.mp4", n_frames=100, gop=12)
    step = int(np.diff(probe(path).require_video().pts[:2])[0])
    container_seek = av.container.InputContainer.seek

    def broken(self, offset, *args, **kwargs):  # type: ignore[no-untyped-def]
        if how == "fails":
            raise av.FFmpegError(0, "seek not supported")
        return container_seek(self, offset + 24 * step, *args, **kwargs)  # two GOPs late

    monkeypatch.setattr(av.container.InputContainer, "seek", broken)
    want = [2, 3, 40, 41, 80, 81]
    with VideoReader(path) as r:
        got = [(i, read_index(f)) for i, f in r.iter_frames_at(want)]
    assert got == [(i, i) for i in want]
    # For frame 40: its keyframe (36), then (landing late) the one before and the start; 41 -> 80 is
    # then read forward, though keyframes lie between.
    assert seek_log == ([0, 36] if how == "fails" else [0, 36, 24, 0])


def test_iter_frames_at_calls_back_for_every_decoded_frame(video_25fps: Path) -> None:
    """The callback sees the frames decoded in the gaps too, and can stop the read (a cancel)."""
    class Stop(Exception):
        pass

    calls: list[int] = []
    with VideoReader(video_25fps) as r:
        got = [i for i, _ in r.iter_frames_at([0, 20], lambda: calls.append(1))]
        assert got == [0, 20] and len(calls) >= 21  # 0..20 decoded forward (gap under the window)

        def stop_after_five() -> None:
            calls.append(1)
            if len(calls) > 5:
                raise Stop

        calls.clear()
        with pytest.raises(Stop):
            list(r.iter_frames_at([0, 30], stop_after_five))
        assert read_index(r.frame(30)) == 30  # the reader is still usable


def test_iter_frames_at_names_frames_the_decoder_did_not_deliver(
        video_25fps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.media import reader as reader_mod

    original = reader_mod._Decoder.frames

    def dropping(self):  # type: ignore[no-untyped-def]
        return ((j, f) for j, f in original(self) if j not in (20, 21))  # a damaged stretch

    monkeypatch.setattr(reader_mod._Decoder, "frames", dropping)
    with VideoReader(video_25fps) as r:
        got = [i for i, _ in r.iter_frames_at([19, 20, 21, 22, 49])]
        assert got == [19, 22, 49]
        assert any("frames 20..21" in w for w in r.warnings)


def test_frame_cache_returns_copies(video_25fps: Path) -> None:
    with VideoReader(video_25fps, cache_frames=8) as r:
        a = r.frame(10)
        a[:] = 0
        assert read_index(r.frame(10)) == 10


def test_frame_at_time_vfr(video_vfr: Path) -> None:
    with VideoReader(video_vfr) as r:
        times = np.asarray(VFR_TIMES)
        np.testing.assert_allclose(r.frame_times, times, atol=1e-4)
        for i, t in enumerate(times):
            assert read_index(r.frame_at_time(t)) == i
            if i + 1 < len(times):  # just before the next frame: still this one
                assert read_index(r.frame_at_time((t + times[i + 1]) / 2)) == i
        assert read_index(r.frame_at_time(-5.0)) == 0
        assert read_index(r.frame_at_time(1e6)) == len(times) - 1


def test_rotated_video_is_upright(video_rotated: Path) -> None:
    info = probe(video_rotated).require_video()
    assert info.rotation == 90
    assert (info.width, info.height) == (120, 160)
    assert (info.coded_width, info.coded_height) == (160, 120)
    with VideoReader(video_rotated) as r:
        f = r.frame(3)
        assert f.shape == (160, 120, 3)
        assert f.flags["C_CONTIGUOUS"]
        assert read_index(f) == 3  # the code reads correctly only when the picture is upright
        with pytest.raises(ValueError):
            read_index(np.rot90(f))


def test_odd_size_kept(video_odd: Path) -> None:
    with VideoReader(video_odd) as r:
        assert r.frame(0).shape == (405, 721, 3)


def test_bgr_output(video_25fps: Path) -> None:
    with VideoReader(video_25fps) as rgb, VideoReader(video_25fps, pixel_format="bgr24") as bgr:
        np.testing.assert_array_equal(rgb.frame(7), bgr.frame(7)[..., ::-1])


def test_index_errors_and_close(video_25fps: Path) -> None:
    r = VideoReader(video_25fps)
    with pytest.raises(IndexError):
        r.frame(len(r))
    assert read_index(r.frame(-1)) == len(r) - 1
    r.close()
    with pytest.raises(ValueError):
        r.frame(0)
    assert read_index(read_frame(video_25fps, 12)) == 12


@pytest.mark.media
@pytest.mark.parametrize("clip", ["latentsync_demo1_portrait.mp4", "latentsync_demo3_portrait.mp4",
                                  "hdtf_katiehill.mp4", "retalking_face_1.mp4"])
def test_real_clips_random_access_matches_sequential(shared_media: Path, clip: str) -> None:
    """HEVC portrait, mpeg4, and a real VFR h264 clip: random access and sparse reads equal the
    sequential decode."""
    path = shared_media / "video" / clip
    with VideoReader(path) as r:
        n = len(r)
        # Random frames, and the frames around each keyframe (where a seek lands).
        around = [int(k) + d for k in r.info.keyframes[1:] for d in (-2, -1, 0, 1)]
        picks = sorted({*random.Random(1).sample(range(n), 6), 0, n - 1, *[i for i in around if 0 <= i < n]})
        want = {i: f for i, f in r.iter_frames() if i in picks}
        assert sorted(want) == picks
        for i in reversed(picks):
            np.testing.assert_array_equal(r.frame(i), want[i], err_msg=f"{clip} frame {i}")
        sparse = dict(r.iter_frames_at(picks))  # seeks over the gaps
        assert sorted(sparse) == picks
        for i in picks:
            np.testing.assert_array_equal(sparse[i], want[i], err_msg=f"{clip} frame {i}, sparse read")


@pytest.mark.media
def test_real_clip_probe(shared_media: Path) -> None:
    v = probe(shared_media / "video" / "latentsync_demo1_portrait.mp4").require_video()
    assert (v.codec, v.width, v.height, v.frame_count) == ("hevc", 1080, 1920, 250)
    assert v.avg_fps == pytest.approx(25) and not v.is_vfr
    vfr = probe(shared_media / "video" / "retalking_face_1.mp4").require_video()
    assert vfr.is_vfr and vfr.frame_count == 135
    m = probe(shared_media / "video" / "hdtf_katiehill.mp4")
    assert m.require_video().codec == "mpeg4" and m.audio[0].codec == "aac"


def test_no_video_stream_is_a_clear_error(tmp_path: Path) -> None:
    from tests.synth import make_audio

    path, _ = make_audio(tmp_path / "speech.m4a", codec="aac")
    with pytest.raises(MediaError, match="has no video stream") as e:
        VideoReader(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("mpeg-ts.ts", {}),  # seeks by byte position, timestamps start at 1.4 s
        ("raw stream.h264", {}),  # no timestamps at all
        ("mpeg4 in.avi", {"codec": "mpeg4", "bframes": 0}),
        ("vp8.webm", {"codec": "libvpx", "bframes": 0}),
    ],
)
def test_other_containers(tmp_path: Path, name: str, kw: dict) -> None:
    from tests.synth import make_video

    p = make_video(tmp_path / name, n_frames=40, **kw)
    v = probe(p).require_video()
    assert v.frame_count == 40 and v.fps == pytest.approx(25)
    with VideoReader(p) as r:
        assert [read_index(f) for _, f in r.iter_frames()] == list(range(40))
        assert [read_index(f) for _, f in r.iter_frames(17, 30)] == list(range(17, 30))
        for i in _random_order(40, seed=3):
            assert read_index(r.frame(i)) == i, f"{name}: frame {i}"
