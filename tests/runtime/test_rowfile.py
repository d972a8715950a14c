"""RowFile: an array in a temporary file, read by rows; and a face track spilled to such files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.runtime.rowfile import RowFile, RowLog, map_rows, open_npy_rows, save_npy_rows


def test_rows_read_back_as_the_array(tmp_path: Path) -> None:
    a = np.random.default_rng(0).normal(size=(9000, 7, 2)).astype(np.float32)
    rows = RowFile(a, tmp_path)
    assert rows.shape == a.shape and rows.dtype == a.dtype and rows.ndim == 3 and len(rows) == 9000
    np.testing.assert_array_equal(np.asarray(rows), a)  # written in several blocks
    np.testing.assert_array_equal(rows[5], a[5])
    np.testing.assert_array_equal(rows[-1], a[-1])
    np.testing.assert_array_equal(rows[np.int64(17)], a[17])
    np.testing.assert_array_equal(rows[10:4000:7], a[10:4000:7])
    np.testing.assert_array_equal(rows[::-3], a[::-3])
    idx = np.array([8999, 0, 1, 2, 50, 49, -2])
    np.testing.assert_array_equal(rows[idx], a[idx])
    mask = np.arange(9000) % 11 == 3
    np.testing.assert_array_equal(rows[mask], a[mask])
    assert rows[np.zeros(0, np.int64)].shape == (0, 7, 2)
    assert rows[[]].shape == (0, 7, 2)
    assert np.asarray(rows, np.float64).dtype == np.float64
    assert list(tmp_path.iterdir()) == []  # unnamed: nothing left behind in the folder
    rows.close()


def test_indexing_it_would_read_differently_is_refused(tmp_path: Path) -> None:
    rows = RowFile(np.zeros((5, 3), np.float32), tmp_path)
    for bad in ((0, 1), True, np.zeros((2, 2), np.int64), np.array([0.5]), ...):
        with pytest.raises(TypeError):
            rows[bad]
    with pytest.raises(IndexError):
        rows[5]
    with pytest.raises(IndexError):
        rows[np.array([7])]
    with pytest.raises(IndexError):
        rows[np.ones(4, bool)]


def test_a_spilled_track_reads_as_the_track_in_memory(tmp_path: Path) -> None:
    from engine.lipsync.shape import fit_shape_model
    from engine.pipeline.fitcache import fit_key
    from engine.pipeline.tracks import FaceTrack
    from tests.lipsync.synthface import face_landmarks

    n = 30
    lms = np.stack([face_landmarks(0.02 + 0.2 * abs(np.sin(i / 3)), seed=i % 3) for i in range(n)])
    frames = np.flatnonzero(np.arange(n + 4) % 9 != 4)[:n]
    usable = np.ones(n, bool)
    usable[7] = False
    track = FaceTrack("0", frames, lms, np.zeros((n, 3)), usable, raw=lms + 1.0)
    spilled = track.spill(tmp_path)
    assert isinstance(spilled.landmarks, RowFile) and isinstance(spilled.raw, RowFile)
    total = int(frames[-1]) + 1
    np.testing.assert_array_equal(spilled.openings(total), track.openings(total))
    np.testing.assert_array_equal(spilled.dense(total)[1], track.dense(total)[1])
    np.testing.assert_array_equal(spilled.dense_raw(total), track.dense_raw(total))
    np.testing.assert_array_equal(spilled.raw_at(frames[3:9]), track.raw_at(frames[3:9]))
    np.testing.assert_array_equal(spilled.landmarks_at(int(frames[5])), track.landmarks_at(int(frames[5])))
    ok = track.usable_at(total)[0]
    a = fit_shape_model(spilled.landmark_rows(np.flatnonzero(ok)), 4)
    b = fit_shape_model(track.landmark_rows(np.flatnonzero(ok)), 4)
    np.testing.assert_array_equal(a.components, b.components)
    speaking = np.ones(total, bool)
    assert fit_key("v", spilled, speaking, None, 8) == fit_key("v", track, speaking, None, 8)
    np.testing.assert_array_equal(spilled.subset(usable).dense(total)[1], track.subset(usable).dense(total)[1])


def test_a_blank_row_file_is_filled_a_block_at_a_time(tmp_path: Path) -> None:
    a = np.random.default_rng(1).normal(size=(5000, 3)).astype(np.float32)
    rows = RowFile.blank(a.shape, np.float32, tmp_path)
    assert rows.shape == (5000, 3) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[100:200], np.zeros((100, 3), np.float32))  # zeros until written
    for i in range(0, 5000, 1234):
        rows.write(i, a[i : i + 1234])
    np.testing.assert_array_equal(np.asarray(rows), a)
    rows.write(4999, a[:1] * 2)  # the last row may be rewritten
    np.testing.assert_array_equal(rows[-1], a[0] * 2)
    with pytest.raises(IndexError):
        rows.write(4999, a[:2])  # past the end
    with pytest.raises(IndexError):
        rows.write(0, np.zeros((2, 4), np.float32))  # rows of another shape
    assert list(tmp_path.iterdir()) == []


def test_npy_rows_round_trip_and_bad_files_are_refused(tmp_path: Path) -> None:
    a = np.random.default_rng(2).normal(size=(6000, 4, 2)).astype(np.float32)
    path = tmp_path / "a.npy"
    save_npy_rows(path, RowFile(a, tmp_path), block=1000)  # from rows in a file, in blocks
    np.testing.assert_array_equal(np.load(path), a)  # a plain .npy file
    rows = open_npy_rows(path)
    assert rows.shape == a.shape and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[3000:3100], a[3000:3100])
    np.testing.assert_array_equal(rows[np.array([5999, 7, 8])], a[[5999, 7, 8]])
    rows.close()
    np.save(tmp_path / "small.npy", a[:10])  # numpy's own writer (format 1.0)
    small = open_npy_rows(tmp_path / "small.npy")
    np.testing.assert_array_equal(np.asarray(small), a[:10])
    small.close()
    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="cut short"):
        open_npy_rows(cut)
    np.save(tmp_path / "f.npy", np.asfortranarray(a[:10, :, 0]))
    with pytest.raises(ValueError, match="C-ordered"):
        open_npy_rows(tmp_path / "f.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    with pytest.raises(ValueError):
        open_npy_rows(tmp_path / "junk.npy")


def test_a_row_log_reads_its_rows_while_it_grows(tmp_path: Path) -> None:
    log = RowLog((2, 3), np.float32, tmp_path)
    assert log.shape == (0, 2, 3) and len(log) == 0
    rows = np.random.default_rng(3).normal(size=(600, 2, 3)).astype(np.float32)
    for i, r in enumerate(rows):
        assert log.append(r) == i
        if i % 97 == 0:  # reads between appends see every row so far
            np.testing.assert_array_equal(log[: i + 1], rows[: i + 1])
    np.testing.assert_array_equal(np.asarray(log), rows)
    np.testing.assert_array_equal(log[np.array([599, 3, 4])], rows[[599, 3, 4]])
    with pytest.raises(ValueError, match="does not fit"):
        log.append(np.zeros((3, 2), np.float32))
    assert len(log) == 600
    assert list(tmp_path.iterdir()) == []


def test_parts_and_reshaped_views_read_the_same_file(tmp_path: Path) -> None:
    log = RowLog((1,), np.float32, tmp_path)
    x = np.arange(10_000, dtype=np.float32)
    log.extend(x[:3000, None])
    log.extend(x[3000:, None])
    with pytest.raises(ValueError, match="do not fit"):
        log.extend(np.zeros((3, 2), np.float32))
    flat = log.reshaped(())
    assert flat.shape == (10_000,)
    np.testing.assert_array_equal(flat[123:456], x[123:456])
    part = flat.part(2500, 7000)
    assert part.shape == (4500,)
    np.testing.assert_array_equal(np.asarray(part), x[2500:7000])
    np.testing.assert_array_equal(part[-3:], x[6997:7000])
    np.testing.assert_array_equal(part.part(10, 20)[:], x[2510:2520])
    assert flat.part(9000, 20_000).shape == (1000,) and flat.part(50, 10).shape == (0,)
    with pytest.raises(ValueError):
        log.reshaped((2,))
    del log  # the views keep the file open
    np.testing.assert_array_equal(part[:5], x[2500:2505])


def test_rows_written_at_scattered_positions_and_mapped_a_block_at_a_time(tmp_path: Path) -> None:
    a = np.random.default_rng(6).normal(size=(1000, 2)).astype(np.float32)
    rows = RowFile.blank(a.shape, np.float32, tmp_path)
    rest = np.random.default_rng(7).permutation(np.r_[0:100, 400:1000])
    order = np.concatenate([rest[:50], np.arange(100, 400), rest[50:]])  # one long run among single rows
    rows.write_at(order, a[order])
    np.testing.assert_array_equal(np.asarray(rows), a)
    mapped = map_rows(rows, lambda b: b.sum(axis=1), (), tmp_path, block=128)
    assert mapped.shape == (1000,)
    np.testing.assert_array_equal(np.asarray(mapped), a.sum(axis=1))
