"""Shared fixtures. Generated media fixtures live in tests/synth.py; real clips in ../shared/media."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep caches, logs and autosaves of the test run out of the user's real folders."""
    base = tmp_path_factory.mktemp("userdirs")
    os.environ.setdefault("LIPDUB_CACHE_DIR", str(base / "cache"))
    os.environ.setdefault("LIPDUB_DATA_DIR", str(base / "data"))
    os.environ.setdefault("LIPDUB_TORCH_THREADS", "1")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The folder of real clips; tests using it skip with a reason when it is absent."""
    if not (SHARED_MEDIA / "video").is_dir():
        pytest.skip(f"real test media not found at {SHARED_MEDIA} (only present beside the project checkout)")
    return SHARED_MEDIA
