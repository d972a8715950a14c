"""Tracker, cut detection, identity clustering, smoothing and landmark helpers on synthetic data."""

from __future__ import annotations

import numpy as np

from engine.faces import AnalysisSettings
from engine.faces import landmarks as L
from engine.faces.identity import cluster_tracks
from engine.faces.smoothing import OneEuroFilter
from engine.faces.tracker import CutDetector, Observation, Tracker


def _obs(cx: float, cy: float, size: float = 60.0, score: float = 0.9) -> Observation:
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])
    # eyes, nose, mouth, chin relative to the centre
    rel = np.array([[-0.2, -0.15], [0.2, -0.15], [0.0, 0.0], [0.0, 0.15], [0.0, 0.2], [0.0, 0.45]]) * size
    return Observation(box, rel + np.array([cx, cy]), score)


def _run(tracker: Tracker, frames: list[list[Observation]]) -> list[list[int]]:
    """Track ids assigned per frame, in the order of each frame's observations."""
    out = []
    for i, obs in enumerate(frames):
        pairs = tracker.update(i, obs)
        ids = {id(o): t.id for t, o in pairs}
        out.append([ids[id(o)] for o in obs])
    return out


def test_crossing_paths_keep_their_ids() -> None:
    # two faces moving towards each other on one line, crossing at frame 20
    frames = []
    for i in range(41):
        a = _obs(100 + 5 * i, 100)
        b = _obs(300 - 5 * i, 104)
        frames.append([a, b])
    ids = _run(Tracker(), frames)
    assert ids[0][0] != ids[0][1]
    first_a, first_b = ids[0]
    # away from the crossing the ids are unchanged (the same track follows the same face)
    assert all(f[0] == first_a and f[1] == first_b for f in ids[:15])
    assert all(f[0] == first_a and f[1] == first_b for f in ids[26:]), ids[26:]


def test_crossing_with_occlusion_keeps_ids() -> None:
    # at the crossing the face behind is not seen for 4 frames
    frames = []
    for i in range(41):
        obs = [_obs(100 + 5 * i, 100)]
        if not 18 <= i <= 21:
            obs.append(_obs(300 - 5 * i, 100))
        frames.append(obs)
    ids = _run(Tracker(), frames)
    a0, b0 = ids[0]
    assert [f[0] for f in ids] == [a0] * 41
    assert all(f[1] == b0 for f in ids if len(f) == 2)


def test_gap_within_max_missed_keeps_the_track_longer_ends_it() -> None:
    t = Tracker(max_missed=5)
    frames = [[_obs(100, 100)] for _ in range(10)] + [[] for _ in range(4)] + [[_obs(102, 101)] for _ in range(5)]
    ids = _run(t, frames)
    assert len({i for f in ids for i in f}) == 1
    t2 = Tracker(max_missed=5)
    frames = [[_obs(100, 100)] for _ in range(10)] + [[] for _ in range(8)] + [[_obs(102, 101)] for _ in range(5)]
    ids = _run(t2, frames)
    assert len({i for f in ids for i in f}) == 2
    assert len(t2.ended) == 1


def test_cut_ends_every_track() -> None:
    t = Tracker()
    for i in range(5):
        t.update(i, [_obs(100, 100), _obs(300, 100)])
    before = {tr.id for tr in t.tracks}
    ended = t.end_all()
    assert {tr.id for tr in ended} == before and not t.tracks
    pairs = t.update(5, [_obs(100, 100)])
    assert pairs[0][0].id not in before


def test_far_jump_is_a_new_track() -> None:
    t = Tracker()
    ids = _run(t, [[_obs(100, 100)], [_obs(100, 100)], [_obs(400, 300)]])
    assert ids[1] == ids[0] and ids[2] != ids[0]


def _scene(seed: int, size: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)


def test_cut_detector_cuts_blank_frames_and_steady_shots() -> None:
    cd = CutDetector()
    a, b = _scene(1), _scene(2)
    rng = np.random.default_rng(0)
    results = []
    for _ in range(5):  # the same shot with a little noise: no cut
        noisy = np.clip(a.astype(int) + rng.integers(-4, 5, a.shape), 0, 255).astype(np.uint8)
        results.append(cd.update(noisy))
    assert all(r == (False, False) for r in results)
    black = np.zeros_like(a)
    assert cd.update(black) == (False, True)
    assert cd.update(black) == (False, True)
    assert cd.update(a) == (False, False)  # back to the same shot after black frames: not a cut
    assert cd.update(b) == (True, False)  # another scene: a cut
    assert cd.update(b) == (False, False)


def test_cluster_merges_same_person_never_two_on_screen_together() -> None:
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=128) * 0.1, rng.normal(size=128) * 0.1

    def emb(c: np.ndarray, k: int = 3) -> np.ndarray:
        return c + rng.normal(size=(k, 128)) * 0.01

    frames = [np.arange(0, 50), np.arange(50, 100), np.arange(100, 150), np.arange(100, 150)]
    embs = [emb(p), emb(q), emb(p), emb(p)]  # track 3 looks like p but is on screen with track 2
    groups = cluster_tracks(frames, embs, threshold=0.5)
    assert groups[0][:2] == [0, 2] or groups[0] == [0, 3]
    assert sorted(len(g) for g in groups) == [1, 1, 2]
    assert all(not ({2, 3} <= set(g)) for g in groups)
    assert [1] in groups


def test_cluster_keeps_tracks_without_embeddings_apart() -> None:
    frames = [np.arange(0, 10), np.arange(20, 30)]
    groups = cluster_tracks(frames, [np.zeros((0, 0)), np.zeros((0, 0))], threshold=0.5)
    assert groups == [[0], [1]]


def test_one_euro_still_input_is_steady_fast_input_not_lagging() -> None:
    rng = np.random.default_rng(1)
    f = OneEuroFilter(AnalysisSettings().smooth_min_cutoff, AnalysisSettings().smooth_beta)
    t = np.arange(100) / 25
    still = 10 + rng.normal(scale=0.005, size=100)  # ~0.5 px of jitter on a 100 px eye distance
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(still, t, strict=True)])
    jitter_in = np.abs(np.diff(still[50:], 2)).mean()
    jitter_out = np.abs(np.diff(out[50:], 2)).mean()
    assert jitter_out < 0.3 * jitter_in
    # a 4 Hz, 0.3-unit motion (speech-like) keeps most of its amplitude
    g = OneEuroFilter(AnalysisSettings().smooth_min_cutoff, AnalysisSettings().smooth_beta)
    fast = 0.3 * np.sin(2 * np.pi * 4 * t)
    out = np.array([g(np.array([x]), ti)[0] for x, ti in zip(fast, t, strict=True)])
    assert np.ptp(out[50:]) > 0.8 * np.ptp(fast[50:])


def test_mouth_opening_and_index_sets() -> None:
    lm = np.zeros((468, 2), np.float32)
    lm[list(L.RIGHT_EYE)] = [[100, 100], [120, 100]]
    lm[list(L.LEFT_EYE)] = [[180, 100], [160, 100]]
    lm[L.UPPER_LIP_INNER_MID] = [140, 170]
    lm[L.LOWER_LIP_INNER_MID] = [140, 182]
    assert abs(L.mouth_opening(lm) - 12 / 60) < 1e-6
    series = L.mouth_opening(np.stack([lm, lm]))
    assert isinstance(series, np.ndarray) and series.shape == (2,)
    for name in ("MOUTH_OUTER", "MOUTH_INNER", "JAW", "MOUTH_CORNERS"):
        idx = getattr(L, name)
        assert len(set(idx)) == len(idx) and all(0 <= i < 468 for i in idx)
    assert set(L.MOUTH_CORNERS) <= set(L.MOUTH_OUTER)
    assert L.UPPER_LIP_INNER_MID in L.MOUTH_INNER and L.LOWER_LIP_INNER_MID in L.MOUTH_INNER


def test_cut_detector_ignores_a_fade_on_a_flat_background() -> None:
    # a blue-screen-like frame whose brightness steps up: the histogram moves, the picture does not change
    import cv2

    base = np.full((90, 160, 3), (40, 70, 160), np.uint8)
    cv2.circle(base, (80, 45), 20, (200, 180, 160), -1)
    cd = CutDetector()
    cuts = [cd.update(np.clip(base.astype(int) + 4 * k, 0, 255).astype(np.uint8))[0] for k in range(6)]
    assert not any(cuts)
