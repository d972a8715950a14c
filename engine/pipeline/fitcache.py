"""Fitted speakers kept on disk, so the preview, the export and the next session share one fit.

Fitting a speaker (shape model, audio model, texture bank) is the slow part of preparing a render:
about 10 s per minute of speech plus one decode of the footage. The app's preview fits in its own
process and the export runs in a child process; without this cache the export fitted every speaker
again. An entry is keyed by everything the fit depends on: the video's content, the face track (its
landmarks, usable frames and the frames where it speaks), the audio features' format and the prior
(its weights). A change to any of them is a miss, never a stale fit.

What an entry holds is only what cannot be recomputed cheaply: the models and the bank's small
arrays. The bank's crops stay in their own file (read a crop at a time), its landmarks and poses are re-read
from the face track, so an entry is a few hundred kilobytes for an hour of footage per speaker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features import FEATURES_VERSION
from engine.lipsync.model import PriorModel, Ridge, SpeakerModel
from engine.lipsync.shape import ShapeModel
from engine.lipsync.synth import CropFile, TextureBank
from engine.pipeline.fit import SpeakerFit
from engine.pipeline.tracks import FaceTrack
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows

log = logging.getLogger("lipdub.pipeline.fitcache")

# Bumped whenever fitting produces something else from the same inputs (v2: the resting mouth is the
# speaker's touching lips, engine.lipsync.shape.CLOSED_QUANTILE; v4: the speaker's speed of
# articulation, SpeakerFit.speech_speed), so an older entry is a miss.
FORMAT = "speaker-fit-v4"
_TYPES: dict[str, type] = {c.__name__: c for c in (ShapeModel, SpeakerModel, Ridge, PriorModel)}


def _digest(h: Any, *arrays: np.ndarray | FileRows | None) -> None:
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        if isinstance(a, FileRows):  # the same bytes as the array's, read a block of rows at a time
            h.update(f"{a.dtype}{a.shape}".encode())
            for i in range(0, len(a), 4096):
                h.update(np.ascontiguousarray(a[i : i + 4096]).view(np.uint8).reshape(-1).data)
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1).data)


def bank_check(crops: np.ndarray | CropFile) -> str:
    """A short digest of a texture bank's crops (shape, first, middle and last crop): the bank file
    is named by video and face, so a later fit of the same face may have replaced it."""
    h = hashlib.sha256(f"{crops.shape}".encode())
    if len(crops):
        for i in sorted({0, len(crops) // 2, len(crops) - 1}):
            h.update(np.ascontiguousarray(crops[i]).view(np.uint8).reshape(-1).data)
    return h.hexdigest()[:16]


def fit_key(video_key: str, track: FaceTrack, speaking: np.ndarray, prior: PriorModel | None,
            n_components: int) -> str:
    """The cache key of a whole-video fit of ``track`` with ``prior``."""
    h = hashlib.sha256(f"{FORMAT}|{FEATURES_VERSION}|{video_key}|{track.identity}|{n_components}".encode())
    _digest(h, track.frames, track.landmarks, track.raw, track.usable, np.asarray(speaking, bool))
    if prior is None:
        h.update(b"no prior")
    else:
        _digest(h, prior.ridge.weights, prior.ridge.x_mean, prior.ridge.y_mean)
    return h.hexdigest()[:32]


def _pack(obj: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON-able description of a model dataclass, its arrays moved into ``arrays``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"__array__": prefix}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in _TYPES:
        return {"__type__": type(obj).__name__,
                **{f.name: _pack(getattr(obj, f.name), f"{prefix}.{f.name}", arrays) for f in dataclasses.fields(obj)}}
    raise TypeError(f"cannot store {type(obj).__name__} in a fit cache entry")


def _unpack(desc: Any, arrays: Any) -> Any:
    if isinstance(desc, list):
        return [_unpack(v, arrays) for v in desc]
    if not isinstance(desc, dict):
        return desc
    if "__array__" in desc:
        return np.asarray(arrays[desc["__array__"]])
    cls = _TYPES[desc["__type__"]]
    return cls(**{k: _unpack(v, arrays) for k, v in desc.items() if k != "__type__"})


def _entry_path(key: str, directory: Path | None) -> Path:
    return (directory or cache_dir("fits")) / f"{key}.npz"


def store_fit(key: str, fit: SpeakerFit, bank_path: Path, directory: Path | None = None) -> None:
    """Keep ``fit`` (whose bank crops are the .npy file ``bank_path``) under ``key``; a failure to write
    only logs (the cache saves time, it holds nothing that cannot be fitted again)."""
    arrays: dict[str, np.ndarray] = {}
    if isinstance(fit.bank.crops, CropFile):
        # Where the bank really is: a bank that could not replace an open one (Windows) stays under
        # its temporary name.
        bank_path = fit.bank.crops.path
    meta = {
        "format": FORMAT, "identity": fit.identity, "bank_path": str(bank_path),
        "bank_check": bank_check(fit.bank.crops),
        "shape": _pack(fit.shape, "shape", arrays), "model": _pack(fit.model, "model", arrays),
        "library_key": fit.library_key, "lag_frames": int(fit.lag_frames),
        "own_sync": None if fit.own_sync is None else [float(v) for v in fit.own_sync],
        "speech_speed": None if fit.speech_speed is None else float(fit.speech_speed),
    }
    for name in ("speech_opening", "train_frames", "speaking_frames", "speech_code_std", "opening_dir"):
        value = getattr(fit, name)
        if value is not None:
            arrays[name] = np.asarray(value)
    b = fit.bank
    arrays.update({"bank.frames": b.frames, "bank.codes": b.codes, "bank.origins": b.origins,
                   "bank.triangles": b.triangles})
    path = _entry_path(key, directory)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, __meta__=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep the fit of %s: %s", fit.identity, exc)
        tmp.unlink(missing_ok=True)


def load_fit(key: str, track: FaceTrack, n_frames: int, directory: Path | None = None) -> SpeakerFit | None:
    """The fit kept under ``key`` for ``track`` (a video of ``n_frames``), or None: no entry, an entry
    of another format, or its bank file gone or replaced by another fit's."""
    path = _entry_path(key, directory)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            if meta.get("format") != FORMAT or meta.get("identity") != track.identity:
                return None
            arrays = {k: z[k] for k in z.files}
        frames = arrays["bank.frames"]
        crops = CropFile(meta["bank_path"])
        if len(crops) != len(frames) or meta.get("bank_check") != bank_check(crops):
            crops.close()
            return None  # the bank file now holds another fit's frames
        pose = np.asarray(track.pose[track.rows_of(frames)], np.float64)
        bank = TextureBank(frames, arrays["bank.codes"], pose, track.raw_at(frames),
                           arrays["bank.origins"], crops, arrays["bank.triangles"])
        own = meta["own_sync"]
        return SpeakerFit(
            track.identity, _unpack(meta["shape"], arrays), _unpack(meta["model"], arrays), bank,
            arrays["speech_opening"], arrays["train_frames"], arrays["speaking_frames"], meta["library_key"],
            arrays.get("speech_code_std"), int(meta["lag_frames"]), None if own is None else (own[0], own[1]),
            arrays.get("opening_dir"), meta.get("speech_speed"),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("ignoring the kept fit %s: %s", path, exc)
        return None
