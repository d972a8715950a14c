"""Synthetic media for tests, generated with PyAV directly (independent of engine.media's writer).

Every video frame carries its own index, drawn so a test can read it back after any decode:
a 16-bit code (12 bits of index + 4 check bits) of big black/white blocks in two rows across the top,
plus the number as text. :func:`read_index` decodes it and refuses frames whose check bits do not
match (so a wrong orientation or a wrong frame cannot pass by accident).

Rotated videos are drawn the way phones record them: the picture is stored turned, and the display
matrix says how to turn it back, so a reader that applies rotation sees the code upright at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import av.video.stream
import cv2
import numpy as np

CODE_BITS = 16
DATA_BITS = 12
BITS_PER_ROW = 8
BEEP_TIMES = (0.5, 1.5, 2.5)  # seconds at which "beeps" audio sounds (100 ms bursts of 1 kHz)
BEEP_LEN = 0.1


def _check_bits(index: int) -> int:
    return (index * 7 + 3) % 16


def draw_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame of ``width`` x ``height`` showing ``index`` (code blocks at the top + text)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(width - 1, 1) + index * 5) % 256
    img[..., 1] = (yy * 255 // max(height - 1, 1)) % 256
    img[..., 2] = (index * 37) % 256
    code = (index << 4) | _check_bits(index)
    bw = width // BITS_PER_ROW
    bh = max(8, min(bw, height // 6))
    for b in range(CODE_BITS):
        row, col = divmod(b, BITS_PER_ROW)
        val = 255 if (code >> (CODE_BITS - 1 - b)) & 1 else 0
        img[row * bh : (row + 1) * bh, col * bw : (col + 1) * bw] = val
    scale = max(0.4, height / 240)
    cv2.putText(img, str(index), (4, min(height - 6, 2 * bh + int(30 * scale))), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    return img


def read_index(frame: np.ndarray) -> int:
    """The index drawn into ``frame`` (RGB or BGR, as displayed). ValueError if no valid code is there."""
    h, w = frame.shape[:2]
    bw = w // BITS_PER_ROW
    bh = max(8, min(bw, h // 6))
    gray = frame.astype(np.float32).mean(axis=2)
    code = 0
    for b in range(CODE_BITS):
        row, col = divmod(b, BITS_PER_ROW)
        y0, x0 = row * bh, col * bw
        patch = gray[y0 + bh // 4 : y0 + bh - bh // 4, x0 + bw // 4 : x0 + bw - bw // 4]
        m = float(patch.mean())
        if 70 < m < 185:
            raise ValueError(f"no frame code here (block {b} is grey: {m:.0f})")
        code = (code << 1) | (1 if m >= 128 else 0)
    index, check = code >> 4, code & 0xF
    if check != _check_bits(index):
        raise ValueError(f"frame code check failed (read {code:016b})")
    return index


def beeps(duration: float, rate: int = 48000, channels: int = 2, times: Sequence[float] = BEEP_TIMES) -> np.ndarray:
    """float32 (n, channels): silence with 100 ms 1 kHz bursts at ``times``; channel c is scaled 1/(c+1)."""
    n = round(duration * rate)
    x = np.zeros(n, np.float32)
    for t0 in times:
        a, b = round(t0 * rate), min(n, round((t0 + BEEP_LEN) * rate))
        if a < n:
            x[a:b] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(b - a) / rate)
    return np.stack([x / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def tone(duration: float, rate: int = 48000, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    """float32 (n, channels) sine; channel c has frequency freq * (c + 1)."""
    t = np.arange(round(duration * rate)) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1).astype(
        np.float32
    )


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _add_audio(container, codec: str, rate: int, channels: int, bit_rate: int | None = 128_000):
    s = container.add_stream(codec, rate=rate)
    assert isinstance(s, av.audio.stream.AudioStream)
    s.layout = _LAYOUTS[channels]  # type: ignore[assignment]
    fmts = s.codec_context.codec.audio_formats
    if fmts:
        s.format = fmts[0].name  # type: ignore[assignment]
    if bit_rate and codec not in ("flac",) and not codec.startswith("pcm_"):
        s.bit_rate = bit_rate
    return s


def _encode_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    planar = np.ascontiguousarray(samples.T.astype(np.float32))
    layout = _LAYOUTS[samples.shape[1]]
    step = 1024
    for i in range(0, planar.shape[1], step):
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + step]), format="fltp", layout=layout)
        f.sample_rate = rate
        f.pts = i
        f.time_base = Fraction(1, rate)
        container.mux(stream.encode(f))
    container.mux(stream.encode(None))


def make_video(
    path: str | Path,
    *,
    width: int = 160,
    height: int = 120,
    fps: float | Fraction = 25,
    n_frames: int | None = None,
    duration: float = 2.0,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    audio: str | None = None,
    audio_rate: int = 48000,
    audio_channels: int = 2,
    audio_codec: str = "aac",
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    pix_fmt: str = "yuv420p",
    faststart: bool = False,
) -> Path:
    """Write a test video whose frame ``i`` shows index ``i``.

    ``times``: explicit presentation times (seconds) of each frame, for VFR; else ``n_frames`` (or
    ``duration``) frames at ``fps``. ``rotation``: clockwise degrees a player must turn the stored
    picture (90 = a phone held upright); the picture is stored turned so it displays upright.
    ``audio``: None, "tone" or "beeps" (see :data:`BEEP_TIMES`), lasting as long as the video.
    Container from the extension (.mp4, .mov, .mkv, .avi).
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    if times is None:
        n = n_frames if n_frames is not None else round(duration * float(rate))
        tb = 1 / rate
        pts_list = list(range(n))
        total = float(n * tb)
    else:
        tb = Fraction(1, 90000)
        pts_list = [round(Fraction(t).limit_denominator(10**6) / tb) for t in times]
        n = len(pts_list)
        total = float(times[-1]) + 0.04 if len(times) else 0.0
    k = (rotation // 90) % 4
    if (width % 2 or height % 2) and pix_fmt == "yuv420p" and codec == "libx264":
        pix_fmt = "yuv444p"  # 4:2:0 cannot have odd sizes; real odd-sized H.264 is 4:4:4
    stored_w, stored_h = (height, width) if k % 2 else (width, height)
    options = {}
    if faststart and path.suffix.lower() in (".mp4", ".mov"):
        options["movflags"] = "faststart"
    with av.open(str(path), "w", options=options) as c:
        vs = c.add_stream(codec, rate=rate)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height, vs.pix_fmt = stored_w, stored_h, pix_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if codec == "libx264":
            vs.options = {"crf": "16", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop),
                          "sc_threshold": "0", "bf": str(bframes), "tune": "zerolatency" if not bframes else "film"}
        elif codec in ("mpeg4",):
            vs.options = {"g": str(gop), "qscale": "3"}
            vs.codec_context.qscale = 3  # type: ignore[attr-defined]
        if k:
            vs.set_display_rotation(-90 * k)  # PyAV's angle is counter-clockwise; ours is clockwise
        astream = None
        samples = None
        if audio:
            samples = (beeps if audio == "beeps" else tone)(total, audio_rate, audio_channels)
            astream = _add_audio(c, audio_codec, audio_rate, audio_channels)
        for i, pts in enumerate(pts_list):
            img = draw_frame(i, width, height)
            if k:
                img = np.ascontiguousarray(np.rot90(img, k))  # stored turned back (counter-clockwise)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = pts
            f.time_base = tb
            c.mux(vs.encode(f))
        c.mux(vs.encode(None))
        if astream is not None and samples is not None:
            _encode_audio(c, astream, samples, audio_rate)
    return path


def make_audio(
    path: str | Path,
    *,
    codec: str,
    rate: int = 48000,
    channels: int = 2,
    duration: float = 1.0,
    kind: str = "tone",
    fmt: str | None = None,
) -> tuple[Path, np.ndarray]:
    """Write an audio-only file with ``codec`` (pcm_s16le, pcm_s24le, pcm_f32le, pcm_u8, aac, flac,
    libmp3lame, libopus, ...); returns the path and the float32 samples written."""
    path = Path(path)
    samples = (beeps if kind == "beeps" else tone)(duration, rate, channels)
    with av.open(str(path), "w", format=fmt) as c:
        s = _add_audio(c, codec, rate, channels)
        _encode_audio(c, s, samples, rate)
    return path, samples


def make_zero_frame_video(path: str | Path, width: int = 160, height: int = 120, audio_s: float = 1.0) -> Path:
    """A file with a video stream holding no frames at all (plus ``audio_s`` seconds of audio so the
    container is otherwise valid; 0 for none). Use .mkv: an mp4 drops an empty track."""
    path = Path(path)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        a = _add_audio(c, "aac", 48000, 1) if audio_s > 0 else None
        vs.codec_context.open()
        c.start_encoding()
        if a is not None:
            _encode_audio(c, a, tone(audio_s, 48000, 1), 48000)
        c.mux(vs.encode(None))
    return path


def truncate(src: str | Path, dst: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a download or copy cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def make_unknown_codec_video(path: str | Path) -> Path:
    """An AVI whose video FourCC names no codec FFmpeg knows ("unsupported codec")."""
    path = Path(path)
    make_video(path.with_suffix(".tmp.avi"), codec="mpeg4", n_frames=10, bframes=0)
    data = path.with_suffix(".tmp.avi").read_bytes()
    path.with_suffix(".tmp.avi").unlink()
    for tag in (b"FMP4", b"fmp4", b"XVID", b"xvid", b"DIVX", b"divx", b"mp4v"):
        data = data.replace(tag, b"QQQQ")
    path.write_bytes(data)
    return path


def write_unknown_codec_wav(path: Path) -> Path:
    """A well-formed WAV whose format tag (0x7A7A) names no codec FFmpeg knows."""
    import struct

    data = b"\x00\x01" * 8000
    fmt = struct.pack("<HHIIHH", 0x7A7A, 1, 16000, 32000, 2, 16)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path
