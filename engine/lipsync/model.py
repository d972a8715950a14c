"""Speaker model: audio -> mouth shape code, per frame.

Input: Whisper-base encoder vectors (512-d, 50 Hz) in a half-second window around each frame (the
window is symmetric, so the model can learn that lips lead the sound), averaged into five 0.1 s
slices and normalised per track (a dubbed voice maps into the same space as the original one).
Regression: ridge (in its dual or primal form, whichever is smaller), the penalty chosen by blocked
cross-validation inside the training frames. Optional prior: a model of the speaker-normalised opening learned from other
speakers the user processed (the speaker library); the speaker's own model then fits what the prior
leaves unexplained. With too little speech there is a language-neutral fallback: the 1.8-4.5 kHz band
energy drives the opening, scaled to the speaker's observed range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.linalg

from engine.runtime.rowfile import FileRows


class Rows(Protocol):
    """Design rows: an (n, D) array, or anything that reads like one for ``len``, ``shape`` and
    ``rows[a:b]`` (engine.pipeline.fit.DesignRows computes them when read)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, key: Any, /) -> Any: ...


SLICES = 5  # time slices the half-second window is averaged into
LAMBDAS = np.logspace(-1, 4, 11)  # ridge penalties tried, relative to the mean kernel diagonal
ROW_BLOCK = 1024  # design rows widened to float64 at once (ridge fitting and prediction)


@dataclass
class TrackNorm:
    """Per-track feature normalisation (mean/std of each encoder dimension over the track's speech)."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def from_vectors(vectors: np.ndarray | FileRows, speech: np.ndarray | None = None, block: int = 4096) -> TrackNorm:
        """Over the ``speech`` vectors (all of them with under 50), summed in float64 a block at a
        time: no copy of a long track's vectors."""
        v = vectors if isinstance(vectors, FileRows) else np.asarray(vectors)
        d = v.shape[1]
        use = np.ones(len(v), bool)
        if speech is not None and int(np.asarray(speech).sum()) >= 50:
            use = np.asarray(speech, bool)
        n = int(use.sum())
        if n == 0:
            return TrackNorm(np.zeros(d, np.float32), np.ones(d, np.float32))

        def blocks() -> Iterator[np.ndarray]:
            for i in range(0, len(v), block):
                yield np.asarray(v[i : i + block][use[i : i + block]], np.float64)

        mean = sum((b.sum(0) for b in blocks()), np.zeros(d)) / n
        var = sum((((b - mean) ** 2).sum(0) for b in blocks()), np.zeros(d)) / n
        return TrackNorm(mean.astype(np.float32), (np.sqrt(var) + 1e-3).astype(np.float32))


def pool_window(windows: np.ndarray, norm: TrackNorm, slices: int = SLICES) -> np.ndarray:
    """(N, k, 512) feature windows -> (N, slices * 512) normalised, slice-averaged design rows."""
    w = (np.asarray(windows, np.float32) - norm.mean) / norm.std
    parts = np.array_split(np.arange(w.shape[1]), slices)
    pooled = np.concatenate([w[:, p, :].mean(1) for p in parts], axis=1)
    return pooled / np.sqrt(pooled.shape[1])


@dataclass
class Ridge:
    """Linear ridge regression: ``(x - x_mean) @ weights + y_mean``."""

    weights: np.ndarray  # (D, C)
    x_mean: np.ndarray  # (D,)
    y_mean: np.ndarray  # (C,)
    lam: float  # the penalty chosen, relative to the mean squared norm of the centred rows

    def predict(self, x: Rows) -> np.ndarray:
        """Predictions for rows ``x``, a block of rows at a time (no float64 copy of a long input)."""
        if len(x.shape) != 2:
            raise ValueError(f"expected rows (n, {len(self.x_mean)}), got shape {x.shape}")
        out = np.empty((len(x), self.weights.shape[1]))
        for i in range(0, len(x), ROW_BLOCK):
            out[i : i + ROW_BLOCK] = self.predict_block(np.asarray(x[i : i + ROW_BLOCK]))
        return out

    def predict_block(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for an array of rows, all at once."""
        block = np.array(rows, dtype=np.float64)
        block -= self.x_mean
        return block @ self.weights + self.y_mean


def _blocks(n: int, folds: int) -> list[np.ndarray]:
    return [b for b in np.array_split(np.arange(n), folds) if len(b)]


def _solve_paths(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred training rows ``x`` (n, D) and targets ``y`` (n, C) -> (evals, basis, proj) such that
    the ridge weights for penalty ``p`` are ``basis @ (proj / (evals + p)[:, None])``: the dual form,
    from the eigen-decomposition of the n x n kernel."""
    evals, evecs = np.linalg.eigh(x @ x.T)
    return evals, x.T @ evecs, evecs.T @ y


def fit_ridge(x: Rows, y: np.ndarray, lambdas: np.ndarray = LAMBDAS, folds: int = 5,
              form: str = "auto") -> Ridge:
    """Ridge with its penalty chosen by contiguous-block cross-validation on (x, y).

    Penalties are relative to the mean squared norm of the centred rows (the kernel's mean diagonal).
    Works in the dual (kernel) form when there are fewer rows than features and in the primal form
    otherwise: an hour of speech costs D x D memory, not rows x rows, and the primal form reads the
    rows one cross-validation block at a time, so no full-size copy of ``x`` is made either. ``form``:
    "auto", "dual" or "primal" (the same result either way, up to rounding)."""
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    n, d = np.shape(x)
    primal = n > d if form == "auto" else form == "primal"
    if primal:
        return _fit_ridge_primal(x, y, lambdas, folds)
    x = np.asarray(x, np.float64)
    x_mean = x.mean(0)
    xc = x - x_mean
    scale = float(np.mean(np.sum(xc * xc, axis=1))) if n else 1.0
    scale = scale or 1.0
    best_lam = float(lambdas[len(lambdas) // 2])
    if n >= 2 * folds:
        errs = np.zeros(len(lambdas))
        for held in _blocks(n, folds):
            train = np.ones(n, bool)
            train[held] = False
            # Centre on the training part only, as at fit time.
            mu = xc[train].mean(0)
            xt, xh = xc[train] - mu, xc[held] - mu
            yt_mean = y[train].mean(0)
            evals, basis, proj = _solve_paths(xt, y[train] - yt_mean)
            for j, lam in enumerate(lambdas):
                wts = basis @ (proj / (evals + lam * scale)[:, None])
                errs[j] += float(np.sum((xh @ wts + yt_mean - y[held]) ** 2))
        best_lam = float(lambdas[int(np.argmin(errs))])
    y_mean = y.mean(0)
    weights = xc.T @ np.linalg.solve(xc @ xc.T + best_lam * scale * np.eye(n), y - y_mean)
    return Ridge(weights, x_mean, y_mean, best_lam)


def _sym_update(g: np.ndarray, alpha: float, rows: np.ndarray | None = None, vec: np.ndarray | None = None) -> None:
    """``g += alpha * rows.T @ rows`` (or ``alpha * outer(vec, vec)``) in place, with BLAS on one
    triangle: no D x D temporary. ``g`` is a C-ordered D x D float64 matrix of which only the
    triangle BLAS and LAPACK see as "upper" in its Fortran view (``g.T``) is kept: its lower triangle."""
    if rows is not None:
        out = scipy.linalg.blas.dsyrk(alpha, np.ascontiguousarray(rows, np.float64).T, beta=1.0, c=g.T, trans=0,
                                      lower=0, overwrite_c=1)
    else:
        out = scipy.linalg.blas.dsyr(alpha, np.asarray(vec, np.float64), lower=0, a=g.T, overwrite_a=1)
    if not np.shares_memory(out, g):  # not expected: BLAS worked on a copy
        g[...] = out.T


def _fit_ridge_primal(x: Rows, y: np.ndarray, lambdas: np.ndarray, folds: int) -> Ridge:
    """fit_ridge's primal form from sums over blocks of rows (centred on the overall mean): the Gram
    matrix, and per fold its row sum and cross product with ``y``; a fold's training statistics are
    the totals minus its own (its Gram matrix recomputed from its rows). Rows are read ``ROW_BLOCK``
    at a time, by slices, so ``x`` may be anything that gives rows for a slice (rows computed when
    read). Memory: the Gram totals, a fold's Gram matrix (overwritten by its eigenvectors), the eigen
    solver's workspace and one block of rows in float64, whatever the number of rows; every update of
    a D x D matrix is made in place on one triangle (:func:`_sym_update`)."""
    n, d = np.shape(x)
    blocks = _blocks(n, folds) if n >= 2 * folds else [np.arange(n)]

    def spans(b: np.ndarray) -> Iterator[tuple[int, int]]:
        lo, hi = int(b[0]), int(b[-1]) + 1
        for i in range(lo, hi, ROW_BLOCK):
            yield i, min(i + ROW_BLOCK, hi)

    x_mean = np.zeros(d)
    for b in blocks:
        for lo, hi in spans(b):
            x_mean += np.asarray(x[lo:hi]).sum(0, dtype=np.float64)
    x_mean /= max(n, 1)

    def rows(lo: int, hi: int) -> np.ndarray:
        r = np.array(x[lo:hi], dtype=np.float64)  # a copy: centred in place
        r -= x_mean
        return r

    # Totals only (one D x D matrix, its lower triangle); a fold's own Gram matrix is recomputed from
    # its rows below.
    gram = np.zeros((d, d))
    sums, cross = [], []
    for b in blocks:
        s_b, c_b = np.zeros(d), np.zeros((d, y.shape[1]))
        for lo, hi in spans(b):
            xb = rows(lo, hi)
            _sym_update(gram, 1.0, xb)
            s_b += xb.sum(0)
            c_b += xb.T @ y[lo:hi]
        sums.append(s_b)
        cross.append(c_b)
    total, xty = sum(sums), sum(cross)
    scale = float(np.trace(gram)) / n if n else 1.0
    scale = scale or 1.0
    best_lam = float(lambdas[len(lambdas) // 2])
    if len(blocks) > 1:
        errs = np.zeros(len(lambdas))
        y_total = y.sum(0)
        for k, held in enumerate(blocks):
            n_t = n - len(held)
            mu = (total - sums[k]) / n_t  # mean of the (overall-centred) training rows
            yt_mean = (y_total - y[held].sum(0)) / n_t
            g = gram.copy()
            for lo, hi in spans(held):
                _sym_update(g, -1.0, rows(lo, hi))
            _sym_update(g, -float(n_t), vec=mu)
            # LAPACK's divide and conquer (numpy's own solver) on the triangle in use, handed the Fortran
            # view so that the eigenvectors overwrite ``g`` instead of a copy of it. Its workspace is
            # about two D x D matrices; the MRRR driver ("evr") needs one but took 1.4x the time here.
            evals, basis = scipy.linalg.eigh(g.T, lower=False, overwrite_a=True, check_finite=False, driver="evd")
            del g
            proj = basis.T @ (xty - cross[k] - n_t * np.outer(mu, yt_mean))
            weights = [basis @ (proj / (evals + lam * scale)[:, None]) for lam in lambdas]
            del basis
            for lo, hi in spans(held):
                xh = rows(lo, hi)
                xh -= mu
                for j, wts in enumerate(weights):
                    errs[j] += float(np.sum((xh @ wts + yt_mean - y[lo:hi]) ** 2))
        best_lam = float(lambdas[int(np.argmin(errs))])
    y_mean = y.mean(0)
    # The penalty added on the diagonal in place and a Cholesky solve on the triangle in use, in
    # place: no further D x D copies.
    gram[np.diag_indices(d)] += best_lam * scale
    weights_ = scipy.linalg.solve(gram.T, xty - np.outer(total, y_mean), lower=False, assume_a="pos",
                                  overwrite_a=True, check_finite=False)
    return Ridge(weights_, x_mean, y_mean, best_lam)


@dataclass
class PriorModel:
    """Speaker-normalised mouth opening (z-score) from audio, learned from other speakers."""

    ridge: Ridge
    speakers: list[str] = field(default_factory=list)

    def predict(self, x: Rows) -> np.ndarray:
        return self.ridge.predict(x)[:, 0]


def prior_rows_per_speaker(speakers: int, max_rows: int = 2000) -> int:
    """How many rows :func:`fit_prior` takes from each of ``speakers`` library entries."""
    return max(50, max_rows // max(speakers, 1))


def fit_prior(entries: list[tuple[str, np.ndarray, np.ndarray]], max_rows: int = 2000) -> PriorModel | None:
    """A prior from library entries (speaker key, design rows, z-scored opening); None when empty.
    Each entry gives at most :func:`prior_rows_per_speaker` rows, spread evenly over it."""
    if len(entries) < 2:
        return None
    per = prior_rows_per_speaker(len(entries), max_rows)
    xs, ys = [], []
    for _, x, y in entries:
        idx = np.linspace(0, len(x) - 1, min(len(x), per)).astype(int)
        xs.append(np.asarray(x[idx], np.float64))
        ys.append(np.asarray(y, np.float64)[idx])
    ridge = fit_ridge(np.concatenate(xs), np.concatenate(ys)[:, None], folds=4)
    return PriorModel(ridge, [k for k, _, _ in entries])


@dataclass
class SpeakerModel:
    """audio design rows -> shape codes (in units of the shape model's per-component std)."""

    code_scale: np.ndarray
    ridge: Ridge | None
    prior: PriorModel | None
    prior_map: np.ndarray | None  # (2, C): codes ~ [prior, 1] @ prior_map
    energy_map: np.ndarray | None  # (2, C): codes ~ [energy z, 1] @ energy_map (language-neutral)
    kind: str  # "speaker", "speaker+prior", "prior", "energy"

    def predict(self, x: Rows | None, energy_z: np.ndarray | None = None) -> np.ndarray:
        """Codes per frame from design rows ``x`` (and the band energy z-scores for the fallback)."""
        if self.kind == "energy":
            if energy_z is None or self.energy_map is None:
                raise ValueError("the energy fallback needs the band energy")
            e = np.asarray(energy_z, np.float64)
            return np.stack([e, np.ones_like(e)], 1) @ self.energy_map * self.code_scale
        assert x is not None
        out = np.zeros((len(x), len(self.code_scale)))
        # A block of rows at a time, each read once for the prior and the speaker's own ridge.
        for i in range(0, len(x), ROW_BLOCK):
            rows = np.asarray(x[i : i + ROW_BLOCK])
            if self.prior is not None and self.prior_map is not None:
                p = self.prior.ridge.predict_block(rows)[:, 0]
                out[i : i + len(rows)] += np.stack([p, np.ones_like(p)], 1) @ self.prior_map
            if self.ridge is not None:
                out[i : i + len(rows)] += self.ridge.predict_block(rows)
        return out * self.code_scale


def _lstsq_map(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.stack([a, np.ones_like(a)], 1)
    return np.linalg.lstsq(design, y, rcond=None)[0]


def fit_speaker_model(
    x: Rows,
    codes: np.ndarray,
    code_scale: np.ndarray,
    prior: PriorModel | None = None,
    min_frames: int = 75,
) -> SpeakerModel:
    """Fit on speaking frames: design rows ``x`` (N, D) and the speaker's codes (N, C).

    With fewer than ``min_frames`` rows the speaker's own regression is not trusted: the prior alone
    (mapped to this speaker's codes when there is anything to map with) is used."""
    y = np.asarray(codes, np.float64) / code_scale
    n = len(y)
    if n < min_frames:
        if prior is None:
            raise ValueError("too little speech for a speaker model and no prior")
        p = prior.predict(x) if n else np.zeros(0)
        pmap = _lstsq_map(p, y) if n >= 10 else np.zeros((2, y.shape[1] if y.ndim == 2 else len(code_scale)))
        return SpeakerModel(code_scale, None, prior, pmap, None, "prior")
    if prior is None:
        return SpeakerModel(code_scale, fit_ridge(x, y), None, None, None, "speaker")
    p = prior.predict(x)
    pmap = _lstsq_map(p, y)
    resid = y - np.stack([p, np.ones_like(p)], 1) @ pmap
    return SpeakerModel(code_scale, fit_ridge(x, resid), prior, pmap, None, "speaker+prior")


def energy_fallback(codes: np.ndarray, opening: np.ndarray, code_scale: np.ndarray, rest: np.ndarray) -> SpeakerModel:
    """Language-neutral model: band-energy z-score -> opening, within the speaker's observed range.

    Codes move along the speaker's own opening direction (codes regressed on the opening); energy z
    of 0 sits at the speaker's median speaking opening, +-1 at a quarter of their opening range."""
    y = np.asarray(codes, np.float64) / code_scale
    op = np.asarray(opening, np.float64)
    slope = _lstsq_map(op, y)[0] if len(op) >= 3 and np.std(op) > 0 else np.eye(len(code_scale))[0]
    med = float(np.median(op)) if len(op) else 0.0
    span = float(np.quantile(op, 0.95) - np.quantile(op, 0.05)) / 4 if len(op) >= 3 else 0.05
    base = rest / code_scale + slope * (med - float(np.quantile(op, 0.1) if len(op) else 0.0))
    emap = np.stack([slope * span, base])
    return SpeakerModel(code_scale, None, None, None, emap, "energy")


def rest_weights(speech: np.ndarray, fps: float, min_silence_s: float = 0.3, ramp_s: float = 0.08) -> np.ndarray:
    """Per frame, how much the mouth should rest (1 = closed): silences of ``min_silence_s`` or more,
    with short ramps in and out so the lips close and open smoothly instead of snapping."""
    sp = np.asarray(speech, bool)
    n = len(sp)
    w = np.zeros(n)
    i = 0
    min_len = max(1, round(min_silence_s * fps))
    while i < n:
        if sp[i]:
            i += 1
            continue
        j = i
        while j < n and not sp[j]:
            j += 1
        if j - i >= min_len or i == 0 or j == n:
            w[i:j] = 1.0
        i = j
    ramp = max(1, round(ramp_s * fps))
    if ramp > 1:
        kernel = np.ones(ramp) / ramp
        # Grow the rest region by nothing and soften only its edges inside speech: a max with the
        # blurred mask keeps silent frames fully at rest.
        blurred = np.convolve(w, kernel, mode="same")
        w = np.maximum(w, blurred * 0.8)
    return np.clip(w, 0.0, 1.0)
