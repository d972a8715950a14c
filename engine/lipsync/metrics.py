"""Quality measures of QUALITY.md: sync meter, motion LMD, jitter, seams, mouth PSNR / SSIM."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.lipsync.geometry import LIPS_INNER, LIPS_OUTER, to_canonical

MOUTH_POINTS = np.asarray(tuple(dict.fromkeys(LIPS_OUTER + LIPS_INNER)), np.int64)


@dataclass
class SyncScore:
    z: float
    r: float
    lag_ms: float
    n_eff: float


def _autocorr(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation at lags 0..max_lag, through the FFT (a long track's quarter-length lags
    would be that many dot products: minutes for an hour)."""
    x = x - x.mean()
    d = float(np.dot(x, x)) or 1.0
    size = 1 << int(2 * len(x) - 1).bit_length()  # zero-padded: no wrap-around
    spec = np.fft.rfft(x, size)
    full = np.fft.irfft(spec * np.conj(spec), size)
    return full[: max_lag + 1] / d


def bartlett_n_eff(a: np.ndarray, b: np.ndarray) -> float:
    """Effective sample size of a correlation between two autocorrelated series (Bartlett)."""
    n = len(a)
    if n < 4:
        return float(n)
    k = max(1, n // 4)
    ra, rb = _autocorr(a, k), _autocorr(b, k)
    denom = 1.0 + 2.0 * float(np.sum(ra[1:] * rb[1:]))
    return float(np.clip(n / max(denom, 1e-6), 4.0, n))


def score_text(value: float | None) -> str | None:
    """A sync score (:func:`sync_meter`'s z) as users read it, one decimal; None where there is none."""
    return None if value is None or not np.isfinite(value) else f"{value:.1f}"


def sync_meter(opening: np.ndarray, energy_db: np.ndarray, fps: float, window_s: float = 4.0,
               max_lead_s: float = 0.1) -> SyncScore:
    """Does the mouth opening follow the 1.8-4.5 kHz band energy? Pearson r in ``window_s`` windows,
    averaged, best over mouth-leading lags 0..``max_lead_s``; z = atanh(r) sqrt(n_eff - 3)."""
    op = np.asarray(opening, np.float64)
    en = np.asarray(energy_db, np.float64)
    win = max(8, round(window_s * fps))
    best = SyncScore(float("nan"), float("nan"), 0.0, 0.0)
    for lag in range(0, max(0, round(max_lead_s * fps)) + 1):
        a = op[: len(op) - lag] if lag else op
        b = en[lag:]
        good = np.isfinite(a) & np.isfinite(b)
        rs, ws = [], []
        for s in range(0, len(a), win):
            sel = good[s : s + win]
            if sel.sum() < max(8, win // 2):
                continue
            x, y = a[s : s + win][sel], b[s : s + win][sel]
            if np.std(x) < 1e-9 or np.std(y) < 1e-9:
                continue
            rs.append(float(np.corrcoef(x, y)[0, 1]))
            ws.append(len(x))
        if not rs:
            continue
        r = float(np.average(rs, weights=ws))
        if not np.isfinite(best.r) or r > best.r:
            n_eff = bartlett_n_eff(a[good], b[good])
            z = float(np.arctanh(np.clip(r, -0.999, 0.999)) * np.sqrt(max(n_eff - 3.0, 1.0)))
            best = SyncScore(z, r, 1000.0 * lag / fps, n_eff)
    return best


def canonical_mouth(landmarks: np.ndarray) -> np.ndarray:
    """(N, 468, 2) -> (N, M, 2) mouth points in the canonical face frame (inter-ocular distance 1)."""
    canon, _ = to_canonical(np.asarray(landmarks, np.float64).reshape(-1, 468, 2))
    return canon[:, MOUTH_POINTS, :]


def motion_lmd(rendered: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(LMD of rendered vs real, LMD of a still mouth vs real), each series minus its own mean shape."""
    a, b = canonical_mouth(rendered), canonical_mouth(real)
    a = a - a.mean(0)
    b = b - b.mean(0)
    return float(np.linalg.norm(a - b, axis=-1).mean()), float(np.linalg.norm(b, axis=-1).mean())


def jitter(landmarks: np.ndarray) -> float:
    """Mean absolute second difference of the mouth points over time (per inter-ocular distance)."""
    m = canonical_mouth(landmarks)
    if len(m) < 3:
        return float("nan")
    return float(np.linalg.norm(m[2:] - 2 * m[1:-1] + m[:-2], axis=-1).mean())


def gradient_ring(image: np.ndarray, ring: np.ndarray) -> float:
    """Mean gradient magnitude of ``image`` (BGR, the mask box crop) over the ``ring`` pixels."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    return float(mag[ring].mean()) if ring.any() else float("nan")


def mouth_box(landmarks: np.ndarray, hw: tuple[int, int], grow: float = 0.25) -> tuple[int, int, int, int]:
    p = np.asarray(landmarks, np.float64)[list(LIPS_OUTER)]
    lo, hi = p.min(0), p.max(0)
    pad = (hi - lo) * grow
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return max(0, x0), max(0, y0), min(hw[1], x1), min(hw[0], y1)


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM (grey, 7x7 Gaussian windows) of two equally sized BGR crops."""
    if a.size == 0:
        return float("nan"), float("nan")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    psnr = 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
    x = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (7, 7), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(psnr), float(ssim.mean())
