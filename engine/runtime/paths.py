"""Per-user folders: cache (analysis, features, models), data (logs, autosave, speaker library).

``LIPDUB_CACHE_DIR`` and ``LIPDUB_DATA_DIR`` override the platform defaults (tests use them).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "LipdubStudio"


def cache_dir(*parts: str) -> Path:
    base = os.environ.get("LIPDUB_CACHE_DIR") or platformdirs.user_cache_dir(APP_NAME, appauthor=False)
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*parts: str) -> Path:
    base = os.environ.get("LIPDUB_DATA_DIR") or platformdirs.user_data_dir(APP_NAME, appauthor=False)
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    return data_dir("logs")
