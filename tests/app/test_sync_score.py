"""The inspector shows an assignment's predicted lip-sync score once the preview's preparation delivers
it, and clears it when the assignments change (the engine's preparation is stubbed: the generated
clip has no face to fit)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.preview import LipsyncReady, PreviewRenderer
from engine.pipeline.render import AssignmentSync
from tests.app.helpers import wait_idle
from tests.app.test_window import _setup_track_and_person


def test_inspector_shows_the_prepared_sync_score_and_clears_it_on_a_change(
        qtbot, window, video_25fps: Path, tone_track: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    threads: list[threading.Thread] = []

    def fake_prepare(self: PreviewRenderer, project: Any, progress: Any = None, cancel: Any = None,
                     engine: str = "retrieval", device: str = "auto") -> LipsyncReady:
        threads.append(threading.current_thread())
        # a score that tells the assignments and their versions apart: 3.1 over the whole track, 1.2 once shortened
        scores = {a.id: AssignmentSync(a.identity_id, Path("dub.wav"), 3.1 if a.end_s > 1.9 else 1.2 + k, 0.4,
                                       2.8, 40) for k, a in enumerate(project.assignments)}
        return LipsyncReady(project, scores)

    monkeypatch.setattr(PreviewRenderer, "prepare_lipsync", fake_prepare)
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    label = window.inspector.a_sync
    first = window.assign(track_id, "7")
    assert window.inspector.kind == "assignment" and window.inspector.key == first
    assert label.text() == "Lip sync: —", "nothing before the preview is prepared"
    assert "2 or more is a clear match" in label.toolTip()
    qtbot.waitUntil(lambda: "3.1" in label.text(), timeout=30000)
    assert label.text() == "Lip sync: 3.1\n(the speaker's own voice: 2.8)"
    assert threads and all(t is not threading.main_thread() for t in threads), "prepared off the GUI thread"

    # Changing the assignment drops its score at once; the new one arrives with the next preparation.
    window.inspector.a_end.setValue(1.5)
    assert label.text() == "Lip sync: —"
    qtbot.waitUntil(lambda: "1.2" in label.text(), timeout=30000)
    assert label.text().startswith("Lip sync: 1.2\n(the speaker's own voice: 2.8)")
    assert "Below 2" in label.text()

    # A second assignment: both are scored by the same preparation, each shows its own.
    second = window.assign(track_id, "7", 0.0, 1.0)
    assert window.inspector.key == second and label.text() == "Lip sync: —"
    qtbot.waitUntil(lambda: "2.2" in label.text(), timeout=30000)
    window._select_from_inspector("assignment", first)
    assert label.text().startswith("Lip sync: 1.2\n")
    wait_idle(qtbot, window)
