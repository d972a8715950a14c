"""Writing generated audio to real files of every format the app must read, with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_audio(
    path: Path,
    samples: np.ndarray,
    rate: int,
    codec: str,
    video: str | None = None,
    sample_format: str | None = None,
) -> Path:
    """Encode ``samples`` (n, channels) float32 at ``rate`` into ``path`` (container from the suffix).

    ``video``: also write a small video stream with this codec first (a video file with sound).
    ``sample_format``: the encoder's sample format (e.g. ``s32`` for 24-bit PCM's container format).
    """
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    with av.open(str(path), mode="w") as out:
        vstream = None
        if video:
            vstream = out.add_stream(video, rate=25)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        # FFmpeg's native vorbis encoder is marked experimental.
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        astream = out.add_stream(codec, rate=rate, layout=LAYOUTS[ch], options=options)
        if sample_format:
            astream.format = sample_format
        if vstream is not None:
            n_video = max(1, int(len(x) / rate * 25))
            for i in range(n_video):
                img = np.full((64, 64, 3), (i * 7) % 255, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, 25)
                out.mux(vstream.encode(frame))
        block = 4096
        for i in range(0, len(x), block):
            part = x[i : i + block]
            frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="flt", layout=LAYOUTS[ch])
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
        if vstream is not None:
            out.mux(vstream.encode(None))
    return path
