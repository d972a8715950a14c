"""The main window end to end on generated media: open, scrub, add and assign tracks, undo/redo,
save/reopen, autosave restore, drops and errors."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPoint, Qt

from app.document import autosave_path, unclean_session
from app.timeline import HEADER_W
from engine.project.commands import AddIdentity
from engine.project.model import FaceIdentity
from tests.app.helpers import open_video, qimage_to_rgb, wait_idle
from tests.synth import read_index


def test_open_video_shows_the_exact_frame_at_the_playhead(qtbot, window, video_25fps: Path) -> None:
    open_video(qtbot, window, video_25fps)
    assert window.doc.project.video is not None and window.doc.project.video.path == video_25fps
    assert window.session.video.frame_count == 50
    assert window.doc.stack.undo_label == "Set video"
    window.seek(1.0 + 0.01)
    qtbot.waitUntil(lambda: window.preview.pair is not None and window.preview.pair.index == 25, timeout=10000)
    assert read_index(qimage_to_rgb(window.preview.pair.original)) == 25
    # frame stepping with the arrow keys
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.preview.pair.index == 26, timeout=10000)
    assert read_index(qimage_to_rgb(window.preview.pair.original)) == 26
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: window.preview.pair.index == 24, timeout=10000)
    assert read_index(qimage_to_rgb(window.preview.pair.original)) == 24
    # thumbnails arrived from their worker
    qtbot.waitUntil(lambda: len(window.session.thumbnails) > 0, timeout=10000)


def test_scrubbing_keeps_only_the_newest_frame_request(qtbot, window, video_25fps: Path) -> None:
    open_video(qtbot, window, video_25fps)
    ctl = window.preview_ctl
    ctl.cache.clear()
    dropped_before, delivered_before = ctl.dropped, ctl.delivered
    shown: list[int] = []
    ctl.frame_ready.connect(lambda pair: shown.append(pair.index))
    canvas = window.timeline.canvas
    # drag the playhead across the ruler without letting results in between
    y = 10
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(canvas.x_of(0.05), y))
    for k in range(1, 30):
        qtbot.mouseMove(canvas, QPoint(int(canvas.x_of(0.05 + k * 0.06)), y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(canvas.x_of(0.05 + 29 * 0.06)), y))
    wait_idle(qtbot, window)
    final = window.session.video.frame_at(canvas.playhead)
    assert window.preview.pair.index == final
    assert read_index(qimage_to_rgb(window.preview.pair.original)) == final
    assert shown and shown[-1] == final
    assert ctl.dropped - dropped_before > 0, "superseded requests were dropped"
    assert ctl.delivered - delivered_before < 30, "not every scrub position was rendered"
    # the frame is now cached: showing it again needs no worker
    window.seek(0.0)
    wait_idle(qtbot, window)
    window.seek(canvas.playhead if False else window.session.video.frame_time(final) + 0.01)
    assert window.preview.pair.index == final and not ctl.busy


def _setup_track_and_person(qtbot, window, video, track_path) -> str:  # type: ignore[no-untyped-def]
    open_video(qtbot, window, video)
    [track_id] = window.add_tracks([track_path])
    qtbot.waitUntil(lambda: window.session.tracks[track_id].duration_s is not None, timeout=60000)
    wait_idle(qtbot, window)
    # The generated clip has no faces; a person is added the way the analysis result is applied.
    window.push(AddIdentity(FaceIdentity("7", "Anna")), False)
    return track_id


def test_add_track_drag_to_person_assigns_and_undo_redo(qtbot, window, video_25fps: Path, tone_track: Path) -> None:
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    track = window.doc.project.track(track_id)
    assert track.language == "de"  # guessed from the file name
    view = window.session.tracks[track_id]
    assert abs(view.duration_s - 2.0) < 0.05 and view.peaks is not None
    canvas = window.timeline.canvas
    tl, pl = canvas.lane_for("track", track_id), canvas.lane_for("person", "7")
    start = QPoint(14, tl.top + tl.height // 2)  # the track's coloured handle
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas, QPoint(100, pl.top + 20))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(100, pl.top + 20))
    [a] = window.doc.project.assignments
    assert (a.track_id, a.identity_id) == (track_id, "7")
    assert a.start_s == 0.0 and abs(a.end_s - 2.0) < 0.05
    assert window.actions_by_name["undo"].text() == "&Undo Assign track"
    assert window.inspector.kind == "assignment"
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.doc.project.assignments == []
    assert window.actions_by_name["redo"].isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [x.id for x in window.doc.project.assignments] == [a.id]
    # the inspector edits the range through a command
    window._select_from_inspector("assignment", a.id)
    window.inspector.a_end.setValue(1.5)
    assert window.doc.project.assignments[0].end_s == 1.5
    window.doc.undo()
    assert abs(window.doc.project.assignments[0].end_s - a.end_s) < 1e-9


def test_dragging_a_track_moves_it_in_one_undo_step(qtbot, window, video_25fps: Path, tone_track: Path) -> None:
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    canvas = window.timeline.canvas
    lane = canvas.lane_for("track", track_id)
    y = lane.top + lane.height // 2
    x0 = int(canvas.x_of(0.5))
    steps_before = window.doc.stack.undo_count
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x0, y))
    for k in range(1, 6):
        qtbot.mouseMove(canvas, QPoint(x0 + k * 10, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x0 + 50, y))
    moved = window.doc.project.track(track_id).offset_s
    assert abs(moved - 50 / canvas.px_per_s) < 0.01
    assert window.doc.stack.undo_count == steps_before + 1 and window.doc.stack.undo_label == "Move track"
    window.doc.undo()
    assert window.doc.project.track(track_id).offset_s == 0.0


def _drag(qtbot, canvas, y: int, x_from: float, x_to: float) -> None:  # type: ignore[no-untyped-def]
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(round(x_from), y))
    for k in range(1, 6):
        qtbot.mouseMove(canvas, QPoint(round(x_from + (x_to - x_from) * k / 5), y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(round(x_to), y))


def test_dragging_a_clip_edge_trims_the_track_in_one_undo_step(qtbot, window, video_25fps: Path, tone_track: Path) -> None:
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    canvas = window.timeline.canvas
    lane = canvas.lane_for("track", track_id)
    y = lane.top + lane.height // 2
    px = 1.5 / canvas.px_per_s  # a pixel and a half, in seconds
    steps = window.doc.stack.undo_count

    # The end edge: trim out at 1.5 s; the start and the offset stay.
    _drag(qtbot, canvas, y, canvas.x_of(2.0) - 1, canvas.x_of(1.5) - 1)
    track = window.doc.project.track(track_id)
    assert track.trim_out_s is not None and abs(track.trim_out_s - 1.5) < px
    assert (track.trim_in_s, track.offset_s) == (0.0, 0.0)
    assert window.doc.stack.undo_count == steps + 1 and window.doc.stack.undo_label == "Trim track"

    # The start edge: trim in by 0.4 s; the rest of the audio stays where it plays (offset moves with it).
    _drag(qtbot, canvas, y, canvas.x_of(0.0) + 1, canvas.x_of(0.4) + 1)
    track = window.doc.project.track(track_id)
    assert abs(track.trim_in_s - 0.4) < px and track.offset_s == track.trim_in_s
    assert abs(track.trim_out_s - 1.5) < px
    assert window.doc.stack.undo_count == steps + 2 and window.doc.stack.undo_label == "Trim track"

    # Dragging the end edge past the start stops short of it.
    _drag(qtbot, canvas, y, canvas.x_of(track.offset_s + track.trim_out_s - track.trim_in_s) - 1, canvas.x_of(-1.0))
    short = window.doc.project.track(track_id)
    assert abs(short.trim_out_s - short.trim_in_s - 0.05) < 1e-6

    for _ in range(3):
        window.doc.undo()
    track = window.doc.project.track(track_id)
    assert (track.trim_in_s, track.trim_out_s, track.offset_s) == (0.0, None, 0.0)


def test_rename_person_in_the_lane_header(qtbot, window, video_25fps: Path, tone_track: Path) -> None:
    _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    canvas = window.timeline.canvas
    lane = canvas.lane_for("person", "7")
    qtbot.mouseDClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(HEADER_W // 2, lane.top + 15))
    editor = canvas._editor
    assert editor is not None and editor.text() == "Anna"
    editor.setText("Anna Schmidt")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.doc.project.identity("7").name == "Anna Schmidt"
    assert window.doc.stack.undo_label == "Rename person"


def test_timeline_zooms_with_ctrl_wheel(qtbot, window, video_25fps: Path) -> None:
    open_video(qtbot, window, video_25fps)
    canvas = window.timeline.canvas
    before = canvas.px_per_s
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(canvas.x_of(1.0), 10)
    ev = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False)
    canvas.wheelEvent(ev)
    assert canvas.px_per_s > before * 1.4
    assert abs(canvas.t_of(pos.x()) - 1.0) < 1e-6, "zoom keeps the time under the cursor in place"


def test_save_and_reopen(qtbot, window, make_window, tmp_path: Path, video_25fps: Path, tone_track: Path) -> None:
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    window.assign(track_id, "7", 0.2, 1.2)
    path = tmp_path / "dub"
    assert window.save_to(path)
    saved = window.doc.path
    assert saved is not None and saved.name == "dub.lipdub.json" and not window.doc.modified
    assert str(saved) == window.settings.recent[0]
    other = make_window()
    assert other.open_project(saved)
    wait_idle(qtbot, other)
    p = other.doc.project
    assert p.video.path == video_25fps
    assert [(t.id, t.path, t.language) for t in p.tracks] == [(track_id, tone_track, "de")]
    assert [(i.id, i.name) for i in p.identities] == [("7", "Anna")]
    assert [(a.track_id, a.identity_id, a.start_s, a.end_s) for a in p.assignments] == [(track_id, "7", 0.2, 1.2)]
    assert other.session.video is not None and other.session.tracks[track_id].duration_s is not None


def test_autosave_is_offered_back_after_an_unclean_exit(qtbot, window, make_window, video_25fps: Path, tone_track: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    track_id = _setup_track_and_person(qtbot, window, video_25fps, tone_track)
    window.assign(track_id, "7", 0.0, 1.0)
    qtbot.waitUntil(lambda: autosave_path().is_file() and not window.doc.autosave_pending, timeout=10000)
    wait_idle(qtbot, window)
    data = json.loads(autosave_path().read_text())
    assert len(data["assignments"]) == 1
    # The process "dies" here: no clean close. The next start finds the marker and the autosave.
    info = unclean_session()
    assert info is not None and Path(str(info["autosave"])) == autosave_path()

    from PySide6.QtWidgets import QMessageBox

    import app.main

    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.Yes)
    fresh = make_window()
    assert app.main.offer_restore(fresh, info)
    wait_idle(qtbot, fresh)
    p = fresh.doc.project
    assert p.video.path == video_25fps and [a.identity_id for a in p.assignments] == ["7"]
    assert fresh.doc.modified, "a restored project is unsaved until the user saves it"


def test_declining_the_restore_discards_the_autosave(qtbot, window, make_window, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window.push(AddIdentity(FaceIdentity("1", "Bo")), False)
    qtbot.waitUntil(lambda: autosave_path().is_file() and not window.doc.autosave_pending, timeout=10000)
    wait_idle(qtbot, window)
    info = unclean_session()
    assert info is not None
    from PySide6.QtWidgets import QMessageBox

    import app.main

    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.No)
    fresh = make_window()
    assert not app.main.offer_restore(fresh, info)
    assert not autosave_path().exists() and fresh.doc.project.identities == []


def test_dropped_files_open_video_and_add_tracks(qtbot, window, video_25fps: Path, tone_track: Path, tmp_path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(video_25fps)), QUrl.fromLocalFile(str(tone_track))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    qtbot.waitUntil(lambda: window.doc.project.video is not None, timeout=30000)
    wait_idle(qtbot, window)
    assert window.doc.project.video.path == video_25fps
    assert [t.path for t in window.doc.project.tracks] == [tone_track]
    # something that is neither: a clear error, nothing changed
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    window.open_paths([junk])
    _action, exc = window.errors[-1]
    assert "notes.txt" in exc.user_text() and "video or audio" in exc.user_text()


def test_a_broken_video_reports_an_error_and_keeps_the_project(qtbot, window, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 2048)
    window.open_video(bad)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=30000)
    wait_idle(qtbot, window)
    action, exc = window.errors[-1]
    assert "broken.mp4" in action or "broken.mp4" in str(exc)
    assert window.doc.project.video is None and not window.doc.stack.can_undo


def test_space_and_jkl_play_and_pause(qtbot, window, video_25fps: Path) -> None:
    open_video(qtbot, window, video_25fps)
    window.seek(0.0)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.playing and window.speed == 1.0
    qtbot.waitUntil(lambda: window.playhead > 0.3, timeout=10000)
    qtbot.keyClick(window, Qt.Key.Key_K)
    assert not window.playing
    stopped_at = window.playhead
    qtbot.wait(200)
    assert window.playhead == stopped_at
    qtbot.keyClick(window, Qt.Key.Key_L)
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert window.playing and window.speed == 2.0
    qtbot.keyClick(window, Qt.Key.Key_J)
    assert window.playing and window.speed == -1.0
    qtbot.waitUntil(lambda: window.playhead < stopped_at, timeout=10000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.playing
    wait_idle(qtbot, window)
    # the preview caught up with where playback stopped
    assert window.preview.pair.index == window.session.video.frame_at(window.playhead)
    assert window.preview.status == ""


def test_moved_media_is_relinked_in_one_undo_step(qtbot, window, make_window, tmp_path: Path, video_25fps: Path, tone_track: Path) -> None:
    import shutil

    media = tmp_path / "media"
    media.mkdir()
    video = Path(shutil.copy(video_25fps, media / "clip.mp4"))
    track = Path(shutil.copy(tone_track, media / "dub_de.wav"))
    open_video(qtbot, window, video)
    [track_id] = window.add_tracks([track])
    wait_idle(qtbot, window)
    (tmp_path / "projects").mkdir()
    assert window.save_to(tmp_path / "projects" / "p")
    moved = tmp_path / "moved"
    media.rename(moved)
    other = make_window()
    assert other.open_project(tmp_path / "projects" / "p.lipdub.json")
    wait_idle(qtbot, other)
    assert "2 media file(s) not found" in other.status_job.text()
    assert other.errors == [] and other.session.tracks[track_id].error == "File not found"
    assert other.relink_media(video, moved / "clip.mp4") == 2
    p = other.doc.project
    assert p.video.path == moved / "clip.mp4" and p.track(track_id).path == moved / "dub_de.wav"
    qtbot.waitUntil(lambda: other.session.video is not None and other.session.tracks[track_id].duration_s is not None,
                    timeout=60000)
    wait_idle(qtbot, other)
    other.doc.undo()
    assert other.doc.project.video.path == video
