"""The export dialog: output file, preset, quality, audio, languages; each assignment's predicted lip
sync (from the preview's preparation; a warning below 2, never a block); progress with ETA and cancel;
on success, the file(s) and a button to show them. The export runs in a worker; a failed or
cancelled export leaves nothing at the target (the engine writes to a temporary file and renames)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.document import Document
from app.errors import show_error
from app.export_job import (
    PRESETS,
    ExportRequest,
    export_languages_of,
    planned_outputs,
    run_export,
    run_export_in_subprocess,
)
from app.inspector import SYNC_TOOLTIP, assignment_text, sync_value_text
from app.workers import Worker, WorkerPool
from engine.errors import LipdubError
from engine.project.commands import ChangeRenderSettings
from engine.runtime.jobs import Progress

SPEEDS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"]


def crf_words(crf: int) -> str:
    if crf <= 17:
        return "visually lossless, large files"
    if crf <= 21:
        return "high quality"
    if crf <= 26:
        return "good, smaller files"
    return "low quality, small files"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating time left…"
    seconds = max(0, int(seconds))
    m, s = divmod(seconds, 60)
    return f"about {m} min {s:02d} s left" if m else f"about {s} s left"


class ExportDialog(QDialog):
    def __init__(self, doc: Document, pool: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.pool = pool
        self.worker: Worker | None = None
        self.outputs: list[Path] = []
        self.outcome = ""  # "done" | "cancelled" | "failed"
        self.error: BaseException | None = None
        self.show_error_dialogs = True
        self.in_subprocess = True  # tests that hook into the export run it in this process
        self.setWindowTitle("Export")
        self.setMinimumWidth(600)
        project = doc.project
        render = project.render

        # output
        out_box = QGroupBox("Output")
        self.path_edit = QLineEdit(str(self._default_path()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.preset = QComboBox()
        for key, (label, _codec, _suffix) in PRESETS.items():
            self.preset.addItem(label, key)
        self.preset.setCurrentIndex(1 if render.codec == "libx265" else 0)
        self.speed = QComboBox()
        self.speed.addItems(SPEEDS)
        self.speed.setCurrentText(render.preset if render.preset in SPEEDS else "veryfast")
        self.crf = QSlider(Qt.Orientation.Horizontal)
        self.crf.setRange(12, 32)
        self.crf.setValue(int(render.crf))
        self.crf_label = QLabel()
        self.crf_label.setMinimumWidth(250)
        self.crf.valueChanged.connect(self._crf_changed)
        crf_row = QHBoxLayout()
        crf_row.addWidget(self.crf, 1)
        crf_row.addWidget(self.crf_label)
        of = QFormLayout(out_box)
        of.addRow("File", row)
        of.addRow("Format", self.preset)
        of.addRow("Encoder speed", self.speed)
        of.addRow("Quality (CRF)", crf_row)

        # audio and languages
        audio_box = QGroupBox("Audio")
        self.dub_only = QRadioButton("Dub only")
        self.dub_plus = QRadioButton("Dub, plus the original audio as a second track")
        g = QButtonGroup(self)
        g.addButton(self.dub_only)
        g.addButton(self.dub_plus)
        (self.dub_plus if render.audio_mode == "dub_plus_original" else self.dub_only).setChecked(True)
        al = QVBoxLayout(audio_box)
        al.addWidget(self.dub_only)
        al.addWidget(self.dub_plus)
        self.langs = export_languages_of(project)
        self.per_language = QRadioButton("One file per language")
        self.multi_track = QRadioButton("One file with an audio track per language")
        g2 = QButtonGroup(self)
        g2.addButton(self.per_language)
        g2.addButton(self.multi_track)
        (self.multi_track if render.language_mode == "one_file_multi_track" else self.per_language).setChecked(True)
        if len(self.langs) > 1:
            al.addWidget(QLabel(f"Languages: {', '.join(self.langs)}"))
            al.addWidget(self.per_language)
            al.addWidget(self.multi_track)
        self.plan = QLabel()
        self.plan.setObjectName("hint")
        self.plan.setWordWrap(False)
        self.plan.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        al.addWidget(self.plan)

        # predicted lip sync per assignment: filled by set_sync (the main window's preview knows it)
        self.sync_box = QGroupBox("Predicted lip sync")
        self.sync_box.setToolTip(SYNC_TOOLTIP)
        sl = QVBoxLayout(self.sync_box)
        self.sync_form = QFormLayout()
        self.sync_form.setHorizontalSpacing(16)
        sl.addLayout(self.sync_form)
        self.sync_note = QLabel()
        self.sync_note.setObjectName("statusNote")
        self.sync_note.setWordWrap(True)
        sl.addWidget(self.sync_note)
        self.sync_rows: list[tuple[QLabel, QLabel]] = []
        self.sync_box.setVisible(bool(project.assignments))

        self.note = QLabel(self._engine_note())
        self.note.setObjectName("statusNote")
        self.note.setProperty("state", "bad" if "unchanged" in self.note.text() else "ok")
        self.note.setWordWrap(True)

        # progress
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.stage = QLabel("")
        self.stage.setObjectName("hint")
        self.stage.setWordWrap(True)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("primary")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_or_close)
        self.show_button = QPushButton("Show in folder")
        self.show_button.clicked.connect(self.show_in_folder)
        self.show_button.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)

        lay = QVBoxLayout(self)
        lay.addWidget(out_box)
        lay.addWidget(audio_box)
        lay.addWidget(self.sync_box)
        lay.addWidget(self.note)
        lay.addSpacing(6)
        lay.addWidget(self.progress)
        lay.addWidget(self.stage)
        lay.addWidget(self.result_label)
        lay.addLayout(buttons)
        for w in (self.path_edit,):
            w.textChanged.connect(self._update_plan)
        for b in (self.per_language, self.multi_track):
            b.toggled.connect(self._update_plan)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self._crf_changed(self.crf.value())
        self._update_plan()
        self.set_sync(None)  # until the main window tells (set_sync)
        self._started_at = 0.0
        self._active = False

    # --- form ---------------------------------------------------------------------------------
    def _default_path(self) -> Path:
        video = self.doc.project.video
        assert video is not None
        return video.path.with_name(f"{video.path.stem}.dubbed.mp4")

    def _engine_note(self) -> str:
        if not self.doc.project.assignments:
            return "No track is assigned to a person: mouths stay unchanged; the dubbed audio is exported."
        return "Assigned speakers are lip-synced to their dub; every other pixel is kept as decoded."

    def set_sync(self, scores: dict[str, Any] | None, unknown: str = "") -> None:
        """Each assignment's predicted lip-sync score (engine AssignmentSync by assignment id), as the
        preview's preparation of this same project state measured it; None when that is not known,
        ``unknown`` saying why. Scores below 2 give a warning; the export stays possible."""
        while self.sync_form.rowCount():
            self.sync_form.removeRow(0)
        self.sync_rows = []
        project = self.doc.project
        if scores is None:
            self._set_sync_note(f"Not known: {unknown or 'the preview has not measured these assignments'}.", "")
            return
        low = 0
        for a in project.assignments:
            score = scores.get(a.id)
            value = QLabel(sync_value_text(score) if score is not None else "not known")
            value.setObjectName("syncList")
            value.setWordWrap(True)
            is_low = score is not None and score.z < 2.0  # NaN (not measurable) is no warning
            low += is_low
            value.setProperty("state", "bad" if is_low else "")
            name = QLabel(assignment_text(project, a))
            self.sync_form.addRow(name, value)
            self.sync_rows.append((name, value))
        if low:
            n = len(project.assignments)
            which = "This assignment is" if n == 1 else f"{low} of {n} assignments {'is' if low == 1 else 'are'}"
            self._set_sync_note(f"⚠ {which} below 2: the new mouth may not clearly follow the dub there. "
                                "Check it in the preview; you can still export.", "bad")
        else:
            self._set_sync_note("All 2 or more: the new mouths clearly follow the syllables of their dubs.", "")

    def _set_sync_note(self, text: str, state: str) -> None:
        self.sync_note.setText(text)
        self.sync_note.setProperty("state", state)
        self.sync_note.style().unpolish(self.sync_note)
        self.sync_note.style().polish(self.sync_note)
        if self.isVisible():
            self._fit_height()

    def _fit_height(self) -> None:
        """Grow to the height the wrapped notes need at this width (a dialog's size hint does not ask
        them, so a note that wraps to more lines would squeeze the boxes above it)."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        need = layout.totalHeightForWidth(self.width())
        if need > self.height():
            self.resize(self.width(), need)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_height()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text(), "MP4 video (*.mp4);;QuickTime (*.mov);;Matroska (*.mkv)")
        if path:
            self.path_edit.setText(path)

    def _preset_changed(self) -> None:
        self._update_plan()

    def _crf_changed(self, value: int) -> None:
        self.crf_label.setText(f"{value}: {crf_words(value)}")

    def request(self) -> ExportRequest:
        from app.settings import AppSettings

        app_settings = AppSettings.load()
        return ExportRequest(
            engine=app_settings.engine,
            device=app_settings.device,
            out_path=Path(self.path_edit.text().strip()).expanduser().absolute(),
            preset=str(self.preset.currentData()),
            speed=self.speed.currentText(),
            crf=int(self.crf.value()),
            audio_mode="dub_plus_original" if self.dub_plus.isChecked() else "dub_only",
            language_mode="one_file_multi_track" if self.multi_track.isChecked() else "file_per_language",
        )

    def _update_plan(self) -> None:
        if not self.path_edit.text().strip():
            self.plan.setText("Choose a file to export to.")
            return
        outs = planned_outputs(self.doc.project, self.request())
        folder = str(outs[0].parent)
        if len(folder) > 70:
            folder = folder[:30] + "…" + folder[-38:]
        self.plan.setText(f"Will write {len(outs)} file{'s' if len(outs) > 1 else ''} in {folder}:\n"
                          + "\n".join(f"    {p.name}" for p in outs))

    # --- running ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """From the start until the worker's ``finished`` has reached the GUI thread."""
        return self._active

    def _finished(self) -> None:
        self._active = False
        self.cancel_button.setEnabled(True)

    def start(self) -> None:
        if self.running:
            return
        req = self.request()
        if not req.out_path.name:
            return
        # The choices are part of the project (one undo step, only when something changed).
        render = self.doc.project.render
        changes = {
            "codec": PRESETS[req.preset][1], "preset": req.speed, "crf": req.crf,
            "audio_mode": req.audio_mode, "language_mode": req.language_mode,
        }
        changes = {k: v for k, v in changes.items() if getattr(render, k) != v}
        if changes:
            try:
                self.doc.push(ChangeRenderSettings(**changes), merge=False)
            except LipdubError as exc:
                self._failed(exc)
                return
        project = self.doc.stack.snapshot()
        self.outputs = []
        self.outcome = ""
        self.error = None
        self._set_running(True)
        self._started_at = time.monotonic()
        self.stage.setText("Starting…")
        self.result_label.setText("")
        runner = run_export_in_subprocess if self.in_subprocess else run_export
        self.worker = self.pool.start(
            lambda progress, cancel: runner(project, req, progress, cancel),
            "export",
            on_progress=self._on_progress,
            on_result=self._done,
            on_error=self._failed,
            on_cancelled=self._cancelled,
            on_finished=self._finished,
        )
        self._active = True

    def _set_running(self, running: bool) -> None:
        for w in (self.path_edit, self.preset, self.speed, self.crf, self.dub_only, self.dub_plus, self.per_language, self.multi_track, self.export_button):
            w.setEnabled(not running)
        self.cancel_button.setText("Cancel export" if running else "Close")
        self.show_button.setVisible(False)

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(int(p.fraction * 1000))
        # The ETA of the whole export from its overall rate (the engine's ETAs are per stage).
        elapsed = time.monotonic() - self._started_at
        eta = elapsed * (1 - p.fraction) / p.fraction if p.fraction > 0.02 and elapsed > 1.0 else None
        self.stage.setText(f"{p.message or p.stage} — {format_eta(eta)}")

    def _done(self, result: dict[str, Any]) -> None:
        self.outcome = "done"
        self.outputs = list(result["outputs"])
        self._set_running(False)
        self.progress.setValue(1000)
        elapsed = time.monotonic() - self._started_at
        lines = [f"Exported in {elapsed:.1f} s:"] + [str(p) for p in self.outputs]
        if result.get("note"):
            lines.append(result["note"])
        for w in result.get("warnings", [])[:5]:
            lines.append(f"Note: {w}")
        self.stage.setText("Done")
        self.result_label.setText("\n".join(lines))
        self.show_button.setVisible(True)
        self._fit_height()  # the result's lines

    def _failed(self, exc: BaseException) -> None:
        self.outcome = "failed"
        self.error = exc
        self._set_running(False)
        self.stage.setText("The export failed; nothing was written.")
        if self.show_error_dialogs:
            show_error(self, exc, "Exporting")

    def _cancelled(self) -> None:
        self.outcome = "cancelled"
        self._set_running(False)
        self.progress.setValue(0)
        self.stage.setText("Export cancelled; nothing was written.")

    def cancel_or_close(self) -> None:
        if self.running:
            assert self.worker is not None
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling…")
        else:
            self.accept()

    def show_in_folder(self) -> None:
        if self.outputs:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.outputs[0]).parent)))

    def reject(self) -> None:  # Esc / window close: cancel a running export first
        if self.running:
            self.cancel_or_close()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.running:
            self.cancel_or_close()
            event.ignore()
            return
        super().closeEvent(event)
