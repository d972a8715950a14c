"""Put a rendered RGB frame back into the decoded YUV frame it came from, changing only what changed.

The renderer works on RGB (displayed orientation); the encoder wants the source's YUV. Converting the
whole rendered frame RGB -> YUV would touch every pixel (YUV -> RGB -> YUV is not lossless: chroma is
re-filtered and values round), so only the pixels the renderer actually changed are converted and
written into the decoded frame's planes. Every other sample stays bit for bit what the decoder
produced, exactly as for a frame that is passed through untouched. Chroma samples are replaced where
any of the luma pixels they cover changed.
"""

from __future__ import annotations

import threading

import av
import av.video.frame
import numpy as np
from av.video.reformatter import VideoReformatter

# Planar YUV layouts spliced in place: pixel format -> (horizontal subsampling, vertical, sample dtype).
PLANAR_YUV: dict[str, tuple[int, int, type[np.unsignedinteger]]] = {
    "yuv420p": (2, 2, np.uint8),
    "yuvj420p": (2, 2, np.uint8),
    "yuv422p": (2, 1, np.uint8),
    "yuvj422p": (2, 1, np.uint8),
    "yuv444p": (1, 1, np.uint8),
    "yuvj444p": (1, 1, np.uint8),
    "yuv420p10le": (2, 2, np.uint16),
    "yuv422p10le": (2, 1, np.uint16),
    "yuv444p10le": (1, 1, np.uint16),
}

_local = threading.local()

# Margin (pixels) around the changed box that is converted along with it: the RGB -> YUV conversion
# filters chroma over neighbours, so the box's own edge samples see real context.
_MARGIN = 8


def rgb_conversion_args(frame: av.video.frame.VideoFrame) -> dict[str, str]:
    """The swscale matrix and range that turn ``frame``'s YUV into RGB the way
    :class:`engine.media.VideoReader` does (tagged: the tags; untagged: BT.709 for HD, BT.601 below),
    so the same arguments convert RGB back into this frame's YUV."""
    from engine.media.color import sws_colorspace, sws_range

    name = frame.format.name
    space = frame.colorspace
    if space in (None, 2):
        space = 1 if frame.height >= 720 else 6
    color_range = frame.color_range
    if color_range in (None, 0) and name.startswith("yuvj"):
        color_range = 2
    return {"colorspace": sws_colorspace(int(space)), "color_range": sws_range(int(color_range or 0))}


def plane_array(plane: av.video.plane.VideoPlane, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """A writable (height, width) numpy view of one plane (line padding cut off)."""
    item = np.dtype(dtype).itemsize
    flat = np.frombuffer(plane, dtype=dtype)  # type: ignore[call-overload]
    return flat.reshape(plane.height, plane.line_size // item)[:, : plane.width]


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The bounding box (y0, y1, x0, x1) of the pixels that differ and the mask of those pixels inside
    the box (shape (y1 - y0, x1 - x0)); None when the frames are identical.

    Compares the rows as flat byte strings first (numpy reduces a trailing axis of 3 slowly), so only
    the box is examined pixel by pixel."""
    h = before.shape[0]
    b2, a2 = before.reshape(h, -1), after.reshape(h, -1)
    rows = np.flatnonzero((b2 != a2).any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero((b2[y0:y1] != a2[y0:y1]).any(axis=0)) // before.shape[2]
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    mask = np.any(before[y0:y1, x0:x1] != after[y0:y1, x0:x1], axis=2)
    return mask, (y0, y1, x0, x1)


def splice_rgb(
    frame: av.video.frame.VideoFrame,
    before: np.ndarray,
    after: np.ndarray,
    *,
    rotation_k: int = 0,
    rgb_format: str = "rgb24",
) -> av.video.frame.VideoFrame | None:
    """Write the pixels where ``after`` differs from ``before`` into ``frame`` (in place, after making
    it writable) and return it; None when nothing differs.

    ``before``/``after`` are (H, W, 3) uint8 in displayed orientation, ``before`` being ``frame``
    converted like the reader does and turned by ``np.rot90(x, rotation_k)``. Raises ValueError for
    pixel formats that cannot be spliced (see :data:`PLANAR_YUV`); the caller then converts the whole
    frame.
    """
    layout = PLANAR_YUV.get(frame.format.name)
    if layout is None:
        raise ValueError(f"cannot splice into {frame.format.name} frames")
    sx, sy, dtype = layout
    if rotation_k:
        before = np.rot90(before, -rotation_k)
        after = np.rot90(after, -rotation_k)
    found = changed_box(before, after)
    if found is None:
        return None
    box_mask, (by0, by1, bx0, bx1) = found
    h, w = before.shape[:2]
    y0, y1, x0, x1 = by0, by1, bx0, bx1
    # Grow by the margin, align the box to the chroma grid, clamp to the frame.
    y0 = max(0, y0 - _MARGIN) // sy * sy
    x0 = max(0, x0 - _MARGIN) // sx * sx
    y1 = min(h, -(-(y1 + _MARGIN) // sy) * sy)
    x1 = min(w, -(-(x1 + _MARGIN) // sx) * sx)

    conv = rgb_conversion_args(frame)
    patch = av.video.frame.VideoFrame.from_ndarray(np.ascontiguousarray(after[y0:y1, x0:x1]), format=rgb_format)
    # One reformatter per thread: it keeps its swscale context while the patch size stays the same.
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    yuv = reformatter.reformat(
        patch, format=frame.format.name, dst_colorspace=conv["colorspace"], dst_color_range=conv["color_range"],  # type: ignore[arg-type]
    )
    frame.make_writable()
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    mask[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = box_mask
    luma = plane_array(frame.planes[0], dtype)[y0:y1, x0:x1]
    luma[mask] = plane_array(yuv.planes[0], dtype)[mask]
    # A chroma sample changes when any luma pixel it covers changed.
    ph, pw = mask.shape
    ch, cw = -(-ph // sy), -(-pw // sx)
    padded = np.zeros((ch * sy, cw * sx), dtype=bool)
    padded[:ph, :pw] = mask
    cmask = padded.reshape(ch, sy, cw, sx).any(axis=(1, 3))
    cy0, cx0 = y0 // sy, x0 // sx
    for k in (1, 2):
        dst = plane_array(frame.planes[k], dtype)[cy0 : cy0 + ch, cx0 : cx0 + cw]
        src = plane_array(yuv.planes[k], dtype)
        dst[cmask] = src[cmask]
    return frame
