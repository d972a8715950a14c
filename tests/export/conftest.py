"""Helpers for the export tests: decode every frame, compare, a renderer that paints a box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.media import VideoReader


def frames(path: Path, pixel_format: str = "rgb24") -> Iterator[tuple[int, np.ndarray]]:
    with VideoReader(path, pixel_format=pixel_format, cache_frames=0) as r:  # type: ignore[arg-type]
        yield from r.iter_frames()


def box_for(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) in the lower middle of a frame, like a mouth region, odd-aligned on purpose."""
    h, w = shape[:2]
    return (h * 5 // 8 + 1, h * 7 // 8 + 1, w * 3 // 8 + 1, w * 5 // 8 + 1)


class BoxRenderer:
    """Paints a flat colour into ``box_for`` on the frames in ``which``; counts calls."""

    def __init__(self, which: set[int] | None = None, colour: tuple[int, int, int] = (250, 30, 60)) -> None:
        self.which = which
        self.colour = np.array(colour, np.uint8)
        self.calls: list[int] = []

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        self.calls.append(index)
        if self.which is not None and index not in self.which:
            return frame
        out = frame.copy()
        y0, y1, x0, x1 = box_for(frame.shape)
        out[y0:y1, x0:x1] = self.colour
        return out


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "exports ü"
    d.mkdir()
    return d
