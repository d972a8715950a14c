"""A ProjectPreview whose preparation is replaced: tests of what the preview does around it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def stub_preparation(monkeypatch: pytest.MonkeyPatch, make_sync: Callable[[list[Any]], list[Any]] | None = None
                     ) -> list[dict[str, Any]]:
    """Replace engine.pipeline.render's prepare_render and open_session. Each preparation is recorded
    (its engine, device and assignments) in the returned list; ``make_sync(assignments)`` gives the
    prepared render's sync scores (none by default)."""
    import engine.pipeline.render as render_mod

    calls: list[dict[str, Any]] = []

    def fake_prepare(video, assignments, use_library=True, progress=None, cancel=None, fitted=None,  # type: ignore[no-untyped-def]
                     engine="retrieval", device="auto"):
        calls.append({"engine": engine, "device": device, "assignments": list(assignments)})
        sync = make_sync(assignments) if make_sync is not None else []
        return render_mod.PreparedRender(Path(video), [], 10, 25.0, [], {}, sync)

    class FakeSession:
        def close(self) -> None:
            pass

    monkeypatch.setattr(render_mod, "prepare_render", fake_prepare)
    monkeypatch.setattr(render_mod, "open_session", lambda prepared: FakeSession())
    return calls
