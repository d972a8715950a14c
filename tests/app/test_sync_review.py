"""The predicted lip-sync score where a reviewer looks: a badge beside the preview's lip-synced side, for
the assignment at the playhead, and a list in the export dialog. Both take the scores of the preview's
preparation (stubbed here: the generated clip has no face to fit) and drop them when the assignments
change, like the inspector."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from app.export_dialog import ExportDialog
from app.preview import LipsyncReady, PreviewRenderer
from engine.errors import LipdubError
from engine.pipeline.render import AssignmentSync
from engine.project.commands import AddIdentity
from engine.project.model import FaceIdentity
from tests.app.helpers import wait_idle
from tests.app.test_window import _setup_track_and_person


def _score(a: Any, z: float, own: float | None = 2.8) -> AssignmentSync:
    return AssignmentSync(a.identity_id, Path("dub.wav"), z, 0.4, own, 40)


@pytest.fixture
def scored(monkeypatch):  # type: ignore[no-untyped-def]
    """Replace the preparation: 3.1 for an assignment over the whole 2 s track, 1.2 (+ its position)
    for a shorter one, NaN for one shorter than half a second. Set ``gate`` to hold it."""
    state: dict[str, Any] = {"gate": None, "fail": False}

    def fake_prepare(self: PreviewRenderer, project: Any, progress: Any = None, cancel: Any = None,
                     engine: str = "retrieval", device: str = "auto") -> LipsyncReady:
        if state["gate"] is not None:
            state["gate"].wait(30)
        if state["fail"]:
            raise LipdubError("no face of Anna is tracked well enough to learn from")
        scores = {}
        for k, a in enumerate(project.assignments):
            length = a.end_s - a.start_s
            scores[a.id] = _score(a, 3.1 if length > 1.9 else float("nan") if length < 0.5 else 1.2 + k)
        return LipsyncReady(project, scores)

    monkeypatch.setattr(PreviewRenderer, "prepare_lipsync", fake_prepare)
    return state


def test_preview_badge_follows_the_playhead_and_is_cleared_by_an_edit(
        qtbot, window, video_25fps: Path, tone_track: Path, scored) -> None:  # type: ignore[no-untyped-def]
    badge = window.preview.sync_badge
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    assert not badge.isVisible(), "no badge without an assignment"
    first = window.assign(track_id, "7")
    window.seek(0.5)
    assert badge.isVisible() and badge.text() == "Lip sync: measuring…"
    assert badge.property("state") == "pending"
    qtbot.waitUntil(lambda: "3.1" in badge.text(), timeout=30000)
    assert badge.text() == "Lip sync 3.1" and badge.property("state") == "ok"
    assert "Anna ← dub_german_tone.wav, 0.0–2.0 s: 3.1 (own voice: 2.8)" in badge.toolTip()
    assert "2 or more is a clear match" in badge.toolTip()
    # beside the lip-synced title, inside the preview, clear of the frame line
    geo = badge.geometry()
    assert window.preview.rect().contains(geo) and geo.top() >= 0

    # An edit of the assignment drops its score at once, as in the inspector; the new one is below 2.
    window.inspector.a_end.setValue(1.5)
    assert badge.text() == "Lip sync: measuring…" and window.inspector.a_sync.text() == "Lip sync: —"
    qtbot.waitUntil(lambda: "1.2" in badge.text(), timeout=30000)
    assert badge.text() == "Lip sync 1.2 · below 2" and badge.property("state") == "bad"

    # Only where the assignment is: past its end the badge goes, and comes back before it.
    window.seek(1.8)
    assert not badge.isVisible()
    window.seek(0.5)
    assert badge.isVisible() and badge.text() == "Lip sync 1.2 · below 2"

    # Two people at the playhead: the selected one's score, with the name.
    window.push(AddIdentity(FaceIdentity("8", "Ben")), False)
    second = window.assign(track_id, "8", 0.0, 1.0)
    assert badge.text() == "Ben · lip sync: measuring…"
    qtbot.waitUntil(lambda: "2.2" in badge.text(), timeout=30000)
    assert badge.text() == "Ben · lip sync 2.2" and badge.property("state") == "ok"
    assert "Anna ←" in badge.toolTip() and "Ben ←" in badge.toolTip(), "the tooltip lists everyone at the playhead"
    window._select_from_inspector("assignment", first)
    assert badge.text() == "Anna · lip sync 1.2 · below 2" and badge.property("state") == "bad"
    window._select_from_inspector("person", "8")
    assert badge.text() == "Ben · lip sync 2.2"
    window.seek(1.2)  # only Anna's assignment is here
    assert badge.text() == "Anna · lip sync 1.2 · below 2"
    assert second is not None
    wait_idle(qtbot, window)


def test_no_badge_when_the_preparation_fails(qtbot, window, video_25fps: Path, tone_track: Path, scored) -> None:  # type: ignore[no-untyped-def]
    scored["fail"] = True
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    window.assign(track_id, "7")
    window.seek(0.5)
    assert window.preview.sync_badge.text() == "Lip sync: measuring…"
    qtbot.waitUntil(lambda: not window.preview.sync_badge.isVisible(), timeout=30000)
    assert not window.sync_pending
    wait_idle(qtbot, window)


def _open_export(qtbot, window, check) -> list[Any]:  # type: ignore[no-untyped-def]
    """Open the export dialog the way Ctrl+E does, run ``check(dialog)`` while it is open, close it."""
    seen: list[Any] = []

    def fake_exec(dlg: ExportDialog) -> int:
        dlg.show()
        seen.append(check(dlg))
        dlg.close()
        return 0

    original = ExportDialog.exec
    ExportDialog.exec = fake_exec  # type: ignore[method-assign]
    try:
        window.export_dialog()
    finally:
        ExportDialog.exec = original  # type: ignore[method-assign]
    assert window._export is None
    return seen


def _rows(dlg: ExportDialog) -> list[tuple[str, str, Any]]:
    return [(name.text(), value.text(), value.property("state")) for name, value in dlg.sync_rows]


def test_export_dialog_lists_the_scores_and_warns_below_2_without_blocking(
        qtbot, window, video_25fps: Path, tone_track: Path, scored) -> None:  # type: ignore[no-untyped-def]
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    window.assign(track_id, "7")
    qtbot.waitUntil(lambda: window.preview_ctl.sync != {}, timeout=30000)

    def all_good(dlg: ExportDialog) -> Any:
        assert dlg.sync_box.isVisible()
        assert _rows(dlg) == [("Anna ← dub_german_tone.wav, 0.0–2.0 s", "3.1 (own voice: 2.8)", "")]
        assert "below 2" not in dlg.sync_note.text() and dlg.sync_note.property("state") == ""
        return True

    assert _open_export(qtbot, window, all_good) == [True]

    # a second assignment below 2 and a third too short to measure
    window.push(AddIdentity(FaceIdentity("8", "Ben")), False)
    window.assign(track_id, "8", 0.0, 1.0)
    window.assign(track_id, "8", 1.0, 1.3)
    qtbot.waitUntil(lambda: len(window.preview_ctl.sync) == 3, timeout=30000)

    def one_low(dlg: ExportDialog) -> Any:
        assert _rows(dlg) == [
            ("Anna ← dub_german_tone.wav, 0.0–2.0 s", "3.1 (own voice: 2.8)", ""),
            ("Ben ← dub_german_tone.wav, 0.0–1.0 s", "2.2 (own voice: 2.8)", ""),
            ("Ben ← dub_german_tone.wav, 1.0–1.3 s", "not measurable (the face shows too little)", ""),
        ]
        return dlg.sync_note.text()

    assert _open_export(qtbot, window, one_low) == ["All 2 or more: the new mouths clearly follow the syllables of their dubs."]

    window._select_from_inspector("assignment", window.doc.project.assignments[0].id)
    window.inspector.a_end.setValue(1.5)  # Anna's: now below 2
    qtbot.waitUntil(lambda: len(window.preview_ctl.sync) == 3, timeout=30000)

    def warned(dlg: ExportDialog) -> Any:
        rows = _rows(dlg)
        assert rows[0] == ("Anna ← dub_german_tone.wav, 0.0–1.5 s", "1.2, below 2 (own voice: 2.8)", "bad")
        assert dlg.sync_note.property("state") == "bad"
        assert dlg.export_button.isEnabled(), "a low score never blocks the export"
        return dlg.sync_note.text()

    [note] = _open_export(qtbot, window, warned)
    assert note.startswith("⚠ 1 of 3 assignments is below 2") and "you can still export" in note
    wait_idle(qtbot, window)


def test_export_dialog_says_when_the_scores_are_not_known_and_fills_them_in(
        qtbot, window, video_25fps: Path, tone_track: Path, scored) -> None:  # type: ignore[no-untyped-def]
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    window.assign(track_id, "7")
    qtbot.waitUntil(lambda: window.preview_ctl.sync != {}, timeout=30000)
    # An edit: the old score is not this project's any more; the new one is held back for a while.
    scored["gate"] = gate = threading.Event()
    window.inspector.a_end.setValue(1.5)

    def pending_then_known(dlg: ExportDialog) -> Any:
        unknown = dlg.sync_note.text()
        assert dlg.sync_rows == [], "no stale number"
        gate.set()
        qtbot.waitUntil(lambda: dlg.sync_rows != [], timeout=30000)
        return unknown, _rows(dlg)

    [(unknown, rows)] = _open_export(qtbot, window, pending_then_known)
    assert unknown == "Not known: the preview is still preparing the speaker models; the scores appear here when it is done."
    assert rows == [("Anna ← dub_german_tone.wav, 0.0–1.5 s", "1.2, below 2 (own voice: 2.8)", "bad")]

    # A preparation that fails: said plainly, with the reason.
    scored["fail"] = True
    window.inspector.a_end.setValue(1.8)
    qtbot.waitUntil(lambda: not window.sync_pending, timeout=30000)
    [failed] = _open_export(qtbot, window, lambda dlg: (dlg.sync_rows, dlg.sync_note.text()))
    assert failed == ([], "Not known: the preview could not prepare the speaker models (no face of Anna is tracked "
                          "well enough to learn from).")
    wait_idle(qtbot, window)


def test_export_dialog_without_assignments_has_no_sync_list(qtbot, window, video_25fps: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.app.helpers import open_video

    open_video(qtbot, window, video_25fps)
    assert _open_export(qtbot, window, lambda dlg: dlg.sync_box.isVisible()) == [False]


def test_a_score_just_below_2_never_reads_2_0() -> None:
    from app.inspector import sync_badge_text, sync_text, sync_value_text
    from engine.project.model import Assignment

    a = Assignment("a1", "t1", "7", 0.0, 2.0)
    assert sync_badge_text(_score(a, 1.96)) == ("Lip sync 1.96 · below 2", "bad")
    assert sync_value_text(_score(a, 1.96)) == "1.96, below 2 (own voice: 2.8)"
    assert sync_text(_score(a, 1.999)).startswith("Lip sync: 1.99\n")
    assert sync_badge_text(_score(a, 2.04)) == ("Lip sync 2.0", "ok")
    assert sync_badge_text(_score(a, 1.94)) == ("Lip sync 1.9 · below 2", "bad")
    assert sync_badge_text(_score(a, float("nan"))) == ("Lip sync: not measurable", "none")


@pytest.mark.parametrize(("mode", "size", "frame"), [
    ("side", (1080, 300), (700, 700)),  # the frames reach the top: the title row is under the frame line
    ("wipe", (1080, 420), (1920, 1080)),
    ("side", (480, 300), (700, 700)),  # too narrow for the row
])
def test_badge_sits_clear_of_the_titles_and_the_frame_line(qtbot, mode: str, size: tuple[int, int],
                                                           frame: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QColor, QFontMetrics, QImage

    from app.preview import FramePair, PreviewView
    from app.resources import style_sheet

    view = PreviewView()
    view.setStyleSheet(style_sheet())  # the badge's size as the app shows it
    qtbot.addWidget(view)
    view.resize(*size)
    view.set_mode(mode)
    view.show()
    img = QImage(*frame, QImage.Format.Format_RGB888)
    img.fill(QColor("#556677"))
    view.set_pair(FramePair(22, 1.033, img, img, "Lip-synced", None, 116.0))
    view.set_sync_badge("Person 2 · lip sync 1.4 · below 2", "bad", "tip")
    badge = view.sync_badge.geometry()
    assert view.sync_badge.isVisible() and view.rect().contains(badge)
    fm = QFontMetrics(view._title_font())
    info = fm.boundingRect(view._info(view.pair))
    info_rect = QRect(view.width() - 10 - info.width(), 4, info.width(), fm.ascent())
    assert not badge.intersects(info_rect), "the frame line stays readable"
    _src, lrect, rrect = view._frame_rects(view.pair)
    if size[0] < 600:  # no room in the title row: on the lip-synced frame, its end kept
        assert rrect.toRect().adjusted(0, 0, 1, 1).contains(badge)
        assert view.sync_badge.text().endswith("lip sync 1.4 · below 2")
        return
    assert view.sync_badge.text() == "Person 2 · lip sync 1.4 · below 2"
    assert badge.bottom() < rrect.top(), "in the title row, above the frame"
    if mode == "side":
        assert badge.left() >= rrect.left() + fm.horizontalAdvance("Lip-synced")
    else:
        assert badge.left() >= lrect.left() + fm.horizontalAdvance("◀ Original")
        assert badge.right() <= rrect.right() - fm.horizontalAdvance("Lip-synced ▶")
