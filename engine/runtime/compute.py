"""Compute device choice and thread caps.

torch at full thread count collapses when decoding or the GUI compete for a small machine's cores,
so the engine caps torch's threads. torch is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import os
from typing import Any

DEVICE_CHOICES = ("auto", "cuda", "cpu")


def default_torch_threads() -> int:
    """Leave one core to decoding/encoding and the GUI on small machines."""
    n = os.cpu_count() or 2
    return max(1, n - 1) if n <= 4 else max(1, n // 2)


def configure_threads(torch_threads: int | None = None) -> int:
    """Cap torch's and OpenCV's thread pools. Returns the torch thread count in force."""
    import cv2
    import torch

    n = torch_threads or int(os.environ.get("LIPDUB_TORCH_THREADS", "0")) or default_torch_threads()
    torch.set_num_threads(n)
    cv2.setNumThreads(max(1, n))
    return n


def resolve_device(choice: str = "auto") -> Any:
    """Map a user choice (auto / cuda / cpu) to a ``torch.device``; 'cuda' without a GPU is an error."""
    import torch

    from engine.errors import BadInputError

    if choice not in DEVICE_CHOICES:
        raise BadInputError(f"unknown compute device {choice!r}", hint="use auto, cuda or cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise BadInputError("CUDA was asked for but no CUDA device is available", hint="choose auto or cpu")
    return torch.device("cpu")


def describe_device(device: Any) -> str:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
