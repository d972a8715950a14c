"""Opening media files with PyAV, turning every way that can fail into a :class:`MediaError`."""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.container

from engine.errors import MediaError

# Messages for the FFmpeg errors users actually meet, keyed by the PyAV exception class name.
_PROBLEMS = {
    "InvalidDataError": "is not a media file FFmpeg can read, or it is damaged",
    "FileNotFoundError": "does not exist",
    "IsADirectoryError": "is a folder, not a media file",
    "PermissionError": "cannot be read (permission denied)",
    "DecoderNotFoundError": "uses a codec this build cannot decode",
    "DemuxerNotFoundError": "is in a container format this build cannot read",
    "EOFError": "ends before any media data (empty or truncated file)",
}


def check_file(path: str | os.PathLike[str]) -> Path:
    """The path as a Path, after making sure it is an existing, non-empty, readable regular file."""
    p = Path(path)
    if not p.exists():
        raise MediaError("file not found", p, "check the path; it may have been moved or renamed")
    if p.is_dir():
        raise MediaError("is a folder, not a media file", p)
    if not os.access(p, os.R_OK):
        raise MediaError("cannot be read (permission denied)", p)
    if p.stat().st_size == 0:
        raise MediaError("is empty (0 bytes)", p)
    return p


def _mp4_without_index(path: Path) -> bool:
    """True for an MP4/MOV file whose index (the moov box) is missing: a recording or copy cut short."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[4:8] not in (b"ftyp", b"mdat", b"wide", b"free"):
                return False
            size = path.stat().st_size
            pos = 0
            while pos + 8 <= size:
                f.seek(pos)
                box = f.read(16)
                n, kind = int.from_bytes(box[:4], "big"), box[4:8]
                if kind == b"moov":
                    return False
                if n == 1 and len(box) >= 16:
                    n = int.from_bytes(box[8:16], "big")
                elif n == 0:
                    break
                if n < 8:
                    break
                pos += n
            return True
    except OSError:
        return False


def media_error(path: Path, exc: BaseException, doing: str = "") -> MediaError:
    """A MediaError for an exception PyAV/FFmpeg raised while reading ``path``."""
    name = type(exc).__name__
    if name == "InvalidDataError" and _mp4_without_index(path):
        return MediaError(
            "is incomplete: its MP4/MOV index (moov box) is missing, so nothing in it can be located",
            path,
            "the recording, download or copy was probably cut short; use a complete copy",
        )
    problem = _PROBLEMS.get(name)
    if problem is None:
        detail = getattr(exc, "strerror", None) or str(exc) or name
        problem = f"cannot be read{' while ' + doing if doing else ''}: {detail}"
    elif doing:
        problem = f"{problem} (while {doing})"
    return MediaError(problem, path)


def open_input(path: str | os.PathLike[str]) -> tuple[Path, av.container.InputContainer]:
    """Open a media file for reading. Raises MediaError naming the file for anything unreadable."""
    p = check_file(path)
    try:
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise media_error(p, exc, "opening it") from exc
    except (OSError, UnicodeError, ValueError) as exc:
        raise media_error(p, exc, "opening it") from exc
    if not container.streams:
        container.close()
        raise MediaError("contains no audio or video streams (empty or unfinished file)", p)
    return p, container
