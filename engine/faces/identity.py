"""Merging tracks into identities (people) by their embeddings.

Average-linkage agglomerative clustering over tracks with a cannot-link rule: two tracks that share a
frame are two people on screen together and never merge. Tracks without any embedding stay identities
of their own (nothing says who they are).
"""

from __future__ import annotations

import numpy as np


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Average Euclidean distance between two sets of embeddings (rows)."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return float(d.mean())


def cluster_tracks(frames: list[np.ndarray], embeddings: list[np.ndarray], threshold: float) -> list[list[int]]:
    """Group track indices into identities.

    ``frames[i]``: the frame indices of track i; ``embeddings[i]``: (k_i, d) embeddings of track i
    (k_i may be 0). Groups are ordered by first appearance; members by first frame.
    """
    n = len(frames)
    groups: list[list[int]] = [[i] for i in range(n)]
    embs: list[np.ndarray] = [np.asarray(e, np.float64) for e in embeddings]
    frame_sets: list[np.ndarray] = [np.unique(np.asarray(f)) for f in frames]

    def together(g: list[int], h: list[int]) -> bool:
        return any(np.intersect1d(frame_sets[a], frame_sets[b], assume_unique=True).size
                   for a in g for b in h)

    def group_emb(g: list[int]) -> np.ndarray:
        parts = [embs[i] for i in g if embs[i].size]
        return np.concatenate(parts) if parts else np.zeros((0, 0))

    while True:
        best: tuple[float, int, int] | None = None
        for a in range(len(groups)):
            ea = group_emb(groups[a])
            if not ea.size:
                continue
            for b in range(a + 1, len(groups)):
                eb = group_emb(groups[b])
                if not eb.size or ea.shape[1] != eb.shape[1]:
                    continue
                d = _distance(ea, eb)
                if d < threshold and (best is None or d < best[0]) and not together(groups[a], groups[b]):
                    best = (d, a, b)
        if best is None:
            break
        _, a, b = best
        groups[a] = groups[a] + groups[b]
        del groups[b]
    for g in groups:
        g.sort(key=lambda i: int(frame_sets[i][0]) if frame_sets[i].size else 0)
    groups.sort(key=lambda g: int(frame_sets[g[0]][0]) if frame_sets[g[0]].size else 0)
    return groups
