"""Item models (qtmodeltester), error messages for people, the settings dialog's findings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from app.document import Document
from app.errors import describe, error_box
from app.models import IdentitiesModel, IdRole, TracksModel
from app.settings import AppSettings, insightface_status
from engine.errors import MediaError
from engine.project.commands import AddIdentity, AddTrack
from engine.project.model import DubTrack, FaceIdentity


def _doc_with_items() -> Document:
    doc = Document()
    doc.push(AddIdentity(FaceIdentity("1", "Anna")))
    doc.push(AddIdentity(FaceIdentity("2", "")))
    doc.push(AddTrack(DubTrack("t1", Path("/media/dub_de.wav"), language="de")))
    doc.push(AddTrack(DubTrack("t2", Path("/media/dub_fr.wav"), language="fr", name="French take")))
    return doc


def test_identities_model_is_a_thin_adapter(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    doc = _doc_with_items()
    model = IdentitiesModel(doc)
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert model.index(0, 0).data() == "Anna" and model.index(1, 0).data() == "2"
    assert model.index(1, 0).data(IdRole) == "2"
    # editing goes through an engine command (undoable)
    assert model.setData(model.index(1, 0), "Bo", Qt.ItemDataRole.EditRole)
    assert doc.project.identity("2").name == "Bo" and doc.stack.undo_label == "Rename person"
    doc.undo()
    assert model.index(1, 0).data() == "2"
    doc.push(AddIdentity(FaceIdentity("3", "Cy")))
    assert model.rowCount() == 3
    qtmodeltester.check(model)
    doc.deleteLater()


def test_tracks_model_is_a_thin_adapter(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    doc = _doc_with_items()
    model = TracksModel(doc)
    qtmodeltester.check(model)
    assert [model.index(r, 0).data() for r in range(2)] == ["dub_de.wav [de]", "French take [fr]"]
    assert model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole) == str(Path("/media/dub_de.wav"))
    assert model.setData(model.index(0, 0), "German", Qt.ItemDataRole.EditRole)
    assert doc.project.track("t1").name == "German"
    qtmodeltester.check(model)
    doc.deleteLater()


def test_error_text_says_what_failed_which_file_and_what_to_do(qtbot) -> None:  # type: ignore[no-untyped-def]
    try:
        raise MediaError("has no video stream", path="/clips/talk.m4a", hint="open a video file, not audio")
    except MediaError as exc:
        title, text, details = describe(exc, "Opening the video")
        box = error_box(None, exc, "Opening the video")
    assert title == "Opening the video failed"
    assert "has no video stream" in text and "/clips/talk.m4a" in text and "open a video file" in text
    assert "Traceback" not in text and "Traceback" in details
    assert box.detailedText() == details and box.icon() == QMessageBox.Icon.Warning
    box.deleteLater()
    # an unexpected error still reads as a sentence and points at the log
    _t, text2, _d = describe(ZeroDivisionError("division by zero"), "Rendering the preview")
    assert "unexpected problem" in text2 and "log" in text2


def test_uncaught_exceptions_are_logged_and_shown_not_printed(qtbot, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import sys

    import app.errors as errors

    shown: list[str] = []
    monkeypatch.setattr(errors, "show_error", lambda parent, exc, action: shown.append(f"{action}: {exc}"))
    monkeypatch.setattr(errors, "_installed", False)
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    errors.install_excepthook()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert shown == ["An operation: boom"]
    assert any("uncaught exception" in r.message for r in caplog.records)
    assert QApplication.instance() is not None


def test_insightface_status_names_what_is_missing(tmp_path: Path) -> None:
    ok, text = insightface_status("")
    assert not ok and "No folder" in text
    ok, text = insightface_status(str(tmp_path / "nope"))
    assert not ok and "not a folder" in text
    ok, text = insightface_status(str(tmp_path))
    assert not ok and "No .onnx" in text
    (tmp_path / "det_10g.onnx").write_bytes(b"x")
    ok, text = insightface_status(str(tmp_path))
    assert not ok and "det_10g.onnx" in text and "recognition" in text
    (tmp_path / "w600k_r50.onnx").write_bytes(b"x")
    ok, text = insightface_status(str(tmp_path))
    assert ok and "2 models" in text


def test_settings_persist_and_the_dialog_shows_the_device(qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.settings import SettingsDialog
    from app.workers import WorkerPool

    assert AppSettings.load().engine == "retrieval"  # the default
    s = AppSettings(device="cpu", face_backend="insightface", insightface_folder="/nowhere", engine="net")
    s.add_recent("/p/a.lipdub.json")
    s.add_recent("/p/b.lipdub.json")
    s.add_recent("/p/a.lipdub.json")
    loaded = AppSettings.load()
    assert loaded.device == "cpu" and loaded.face_backend == "insightface" and loaded.engine == "net"
    assert loaded.recent == [str(Path("/p/a.lipdub.json")), str(Path("/p/b.lipdub.json"))]
    pool = WorkerPool(1)
    dlg = SettingsDialog(loaded, pool)
    qtbot.addWidget(dlg)
    assert dlg.insight.isChecked() and "not a folder" in dlg.insight_status.text()
    qtbot.waitUntil(lambda: dlg.device_status.text().startswith("CPU"), timeout=60000)
    assert dlg.engine_combo.currentData() == "net"
    dlg.builtin.setChecked(True)
    dlg.engine_combo.setCurrentIndex(dlg.engine_combo.findData("retrieval"))
    chosen = dlg.result_settings()
    assert chosen.face_backend == "builtin" and chosen.engine == "retrieval"
    pool.shutdown()
    dlg.close()
    AppSettings().save()


def test_settings_dialog_reports_the_engines_check_of_a_model_folder(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.settings import SettingsDialog
    from app.workers import WorkerPool

    # files named like a pack but not real models: the names pass, the engine's own check does not
    (tmp_path / "det_10g.onnx").write_bytes(b"not a model")
    (tmp_path / "w600k_r50.onnx").write_bytes(b"not a model")
    pool = WorkerPool(1)
    dlg = SettingsDialog(AppSettings(face_backend="insightface", insightface_folder=str(tmp_path)), pool)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: "Checking the models" not in dlg.insight_status.text(), timeout=60000)
    text = dlg.insight_status.text()
    assert text.startswith("✖") and "incomplete" in text and str(tmp_path) in text
    pool.shutdown()
    AppSettings().save()


def test_the_status_bar_shows_the_resolved_compute_device(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    import torch

    from engine.runtime.compute import describe_device, resolve_device

    window = make_window()
    assert window.status_device.text() == "Device: auto, checking…"
    qtbot.waitUntil(lambda: bool(window.compute_device), timeout=60000)
    assert window.status_device.text() == f"Device: {describe_device(resolve_device('auto'))}"
    # A setting the machine cannot honour is said in the status bar, not in a dialog.
    window.settings.device = "cpu" if torch.cuda.is_available() else "cuda"
    window._update_device_label()
    qtbot.waitUntil(lambda: not window.status_device.text().endswith("checking…"), timeout=60000)
    if window.settings.device == "cpu":
        assert window.status_device.text().startswith("Device: CPU (")
    else:
        assert window.status_device.text().startswith("Device (cuda): ✖ CUDA was asked for but no CUDA device")
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
