"""The face analysis as it runs in a child process (no Qt here): analyse, keep the result in the
engine's cache, and hand back the cache file's path (small to send; the parent loads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def analyse_to_cache(video: str, backend: str, insightface_dir: str | None, progress: Any = None,
                     cancel: Any = None) -> dict[str, Any]:
    from engine.faces import analyse, cache_path_for, get_backend

    be = get_backend(backend, insightface_dir)
    result = analyse(video, backend=be, progress=progress, cancel=cancel)
    cache = cache_path_for(video, be)
    if cache.is_file():
        return {"cache": str(cache)}
    return {"analysis": result}  # no cache file (e.g. caching failed): send the result itself


def load(answer: dict[str, Any], video: str) -> Any:
    if "analysis" in answer:
        return answer["analysis"]
    from engine.faces import FaceAnalysis

    result = FaceAnalysis.load(Path(answer["cache"]))
    result.source = str(video)
    return result
