"""One-euro filtering of landmark series (Casiez, Roussel, Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: a still face is smoothed hard (no jitter) while fast
lip motion passes with little lag. Coordinates are filtered in units of the face size (the inter-ocular
distance), so the same parameters work for a 60-pixel face and a 600-pixel one.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of any fixed shape, one sample at a time, with explicit timestamps (seconds).

    ``min_cutoff`` (Hz) sets the smoothing at rest; ``beta`` how fast the cutoff rises with speed
    (speed in ``scale`` units per second).
    """

    def __init__(self, min_cutoff: float = 2.0, beta: float = 1.0, d_cutoff: float = 4.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t = None

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or self._dx is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        scale = max(scale, 1e-6)
        dx = (x - self._x) / dt / scale
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.copy()
