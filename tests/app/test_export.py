"""The export dialog on generated media: a real export to a temp folder, a cancelled one (nothing at
the target), one file per language."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.export_dialog import ExportDialog
from engine.project.commands import SetTrackLanguage
from tests.app.helpers import open_video, wait_idle


@pytest.fixture
def ready(qtbot, window, video_with_audio: Path, tone_track: Path):  # type: ignore[no-untyped-def]
    open_video(qtbot, window, video_with_audio)
    [track_id] = window.add_tracks([tone_track])
    qtbot.waitUntil(lambda: window.session.tracks[track_id].duration_s is not None, timeout=60000)
    wait_idle(qtbot, window)
    # The generated clip has no face to lip-sync, so nothing is assigned: the export muxes the dub
    # (the lip-synced export of a real clip is in test_lipsync_media.py).
    return window, track_id


def _dialog(qtbot, window, out: Path) -> ExportDialog:  # type: ignore[no-untyped-def]
    dlg = ExportDialog(window.doc, window.pool, window)
    dlg.show_error_dialogs = False
    qtbot.addWidget(dlg)
    dlg.path_edit.setText(str(out))
    dlg.show()
    return dlg


def test_export_writes_the_video_with_the_dub(qtbot, ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, _ = ready
    from engine.media import probe

    out = tmp_path / "out folder" / "film.mp4"
    out.parent.mkdir()
    dlg = _dialog(qtbot, window, out)
    dlg.crf.setValue(23)
    from app.settings import AppSettings

    AppSettings(engine="net", device="cpu").save()  # the export takes the engine and device of the app settings
    assert (dlg.request().engine, dlg.request().device) == ("net", "cpu")
    AppSettings().save()
    assert dlg.request().engine == "retrieval"
    dlg.export_button.click()
    assert dlg.running and not dlg.export_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.outcome != "", timeout=120000)
    assert dlg.outcome == "done", dlg.error
    assert dlg.outputs == [out] and out.is_file()
    info = probe(out)
    v = info.require_video()
    assert v.frame_count == 75 and (v.width, v.height) == (320, 240)
    assert [a.language for a in info.audio] == ["deu"]
    assert dlg.show_button.isVisible() and str(out) in dlg.result_label.text()
    # the chosen settings went into the project as one undoable step
    assert window.doc.project.render.crf == 23 and window.doc.stack.undo_label == "Change render settings"
    assert [p.name for p in tmp_path.joinpath("out folder").iterdir()] == ["film.mp4"]
    dlg.close()


def test_cancelled_export_leaves_nothing_at_the_target(qtbot, ready, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window, _ = ready
    import app.export_job as job

    # Hold the engine at its first progress report until the test has pressed Cancel, so the cancel
    # lands in the middle of the export whatever the machine's speed.
    gate = threading.Event()
    reached = threading.Event()
    real = job.run_export

    def gated(project, request, progress=None, cancel=None):  # type: ignore[no-untyped-def]
        def report(p):  # type: ignore[no-untyped-def]
            if progress is not None:
                progress(p)
            if p.stage == "Exporting" and p.done > 0.5 and not gate.is_set():
                reached.set()
                gate.wait(30)

        return real(project, request, report, cancel)

    monkeypatch.setattr("app.export_dialog.run_export", gated)
    out = tmp_path / "film.mp4"
    dlg = _dialog(qtbot, window, out)
    dlg.in_subprocess = False  # the gate above lives in this process
    dlg.export_button.click()
    qtbot.waitUntil(reached.is_set, timeout=60000)  # the export is part-way through its frames
    assert dlg.running
    dlg.cancel_button.click()
    assert dlg.stage.text() == "Cancelling…"
    gate.set()
    qtbot.waitUntil(lambda: dlg.outcome != "", timeout=60000)
    assert dlg.outcome == "cancelled"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "no partial or temporary file is left"
    assert "nothing was written" in dlg.stage.text()
    dlg.close()


def test_failed_export_reports_and_leaves_nothing(qtbot, ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, _ = ready
    target = tmp_path / "film.mp4"
    target.mkdir()  # a folder where the file should go: the export cannot write there
    dlg = _dialog(qtbot, window, target)
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.outcome != "", timeout=60000)
    assert dlg.outcome == "failed" and dlg.error is not None
    assert "film.mp4" in str(dlg.error)
    assert [p.name for p in tmp_path.iterdir()] == ["film.mp4"] and list(target.iterdir()) == []
    assert "nothing was written" in dlg.stage.text() and dlg.export_button.isEnabled()
    dlg.close()


def test_one_file_per_language(qtbot, ready, tmp_path: Path, tone_track: Path) -> None:  # type: ignore[no-untyped-def]
    window, _first = ready
    [second] = window.add_tracks([tone_track])
    window.push(SetTrackLanguage(second, "fr"), False)
    qtbot.waitUntil(lambda: window.session.tracks[second].duration_s is not None, timeout=60000)
    wait_idle(qtbot, window)
    dlg = _dialog(qtbot, window, tmp_path / "film.mp4")
    assert dlg.per_language.isChecked() and "film.de.mp4" in dlg.plan.text() and "film.fr.mp4" in dlg.plan.text()
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.outcome != "", timeout=120000)
    assert dlg.outcome == "done", dlg.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.de.mp4", "film.fr.mp4"]
    from engine.media import probe

    assert [a.language for a in probe(tmp_path / "film.fr.mp4").audio] == ["fra"]
    dlg.close()
