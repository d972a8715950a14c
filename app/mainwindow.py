"""The main window: menus and toolbar, preview, inspector, timeline; opening media and projects,
saving, autosave, undo/redo, settings, export, playback.

Long work (probing, thumbnails, track loading, face analysis, preview frames, export) runs in
:class:`~app.workers.Worker` jobs; the GUI thread only edits the document and paints.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QWidget,
)

from app.document import Document
from app.errors import show_error
from app.inspector import SYNC_TOOLTIP, Inspector, assignment_text, sync_badge_text, sync_value_text
from app.media_jobs import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    ProbedVideo,
    TrackData,
    load_track,
    media_kind,
    probe_video,
    thumbnails,
)
from app.preview import FramePair, LipsyncReady, PreviewController, PreviewView
from app.resources import icon
from app.session import Session, TrackView, VideoInfo
from app.settings import AppSettings, SettingsDialog
from app.timeline import Timeline
from app.workers import Worker, WorkerPool
from engine.errors import LipdubError
from engine.project.commands import (
    AddAssignment,
    AddIdentity,
    AddTrack,
    Command,
    MacroCommand,
    RemoveAssignment,
    RemoveTrack,
    RenameIdentity,
    SetTrackLanguage,
    SetTrackOffset,
    SetTrackTrim,
    SetVideo,
)
from engine.project.model import Assignment, DubTrack, FaceIdentity, Video, new_id
from engine.project.store import PROJECT_SUFFIX
from engine.runtime.paths import log_dir

log = logging.getLogger(__name__)

PROJECT_FILTER = f"Lipdub Studio projects (*{PROJECT_SUFFIX})"
VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ");;All files (*)"
AUDIO_FILTER = "Audio (" + " ".join(f"*{s}" for s in sorted(AUDIO_SUFFIXES)) + ");;All files (*)"

_LANGUAGE_WORDS = {
    "german": "de", "deutsch": "de", "english": "en", "french": "fr", "francais": "fr", "spanish": "es",
    "espanol": "es", "italian": "it", "japanese": "ja", "japan": "ja", "korean": "ko", "chinese": "zh",
    "mandarin": "zh", "portuguese": "pt", "russian": "ru", "dutch": "nl", "polish": "pl", "turkish": "tr",
    "arabic": "ar", "hindi": "hi", "swedish": "sv",
}


def guess_language(path: Path) -> str:
    """A language tag from words in the file name (``dub_german1.wav`` -> ``de``), else ``und``."""
    words = re.split(r"[^a-z]+", path.stem.lower())
    for w in words:
        if w in _LANGUAGE_WORDS:
            return _LANGUAGE_WORDS[w]
    for w in words:
        if w in set(_LANGUAGE_WORDS.values()) and len(w) == 2:
            return w
    return "und"


class MainWindow(QMainWindow):
    status_message = Signal(str)

    def __init__(self, settings: AppSettings | None = None, pool_threads: int = 3) -> None:
        super().__init__()
        self.settings = settings or AppSettings.load()
        self.pool = WorkerPool(pool_threads, self)
        self.doc = Document(self.pool, self)
        self.session = Session(self)
        self.errors: list[tuple[str, BaseException]] = []  # for the log view and tests
        self.show_error_dialogs = True
        self._jobs: dict[str, Worker] = {}
        self._probed: dict[Path, ProbedVideo] = {}
        self._loaded_video: Path | None = None
        self._closing = False
        # track id -> the file-name guess it was added with (a placeholder until detection lands)
        self._language_placeholders: dict[str, str] = {}

        self.setWindowTitle("Lipdub Studio")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.resize(1360, 860)

        # preview
        self.preview_ctl = PreviewController(self.pool)
        self.preview_ctl.frame_ready.connect(self._on_frame)
        self.preview_ctl.error.connect(lambda _rid, _key, exc: self.report_error(exc, "Rendering the preview", dialog=False))
        self.preview = PreviewView()
        # timeline + inspector
        self.timeline = Timeline(self.doc, self.session)
        canvas = self.timeline.canvas
        canvas.playhead_moved.connect(self.seek)
        canvas.selection_changed.connect(self._on_selection)
        canvas.offset_drag.connect(self._on_offset_drag)
        canvas.trim_drag.connect(self._on_trim_drag)
        canvas.assign_requested.connect(self.assign)
        canvas.rename_requested.connect(lambda ident, name: self.push(RenameIdentity(ident, name), False))
        self.inspector = Inspector(self.doc, self.session, self.push)
        self.inspector.select.connect(self._select_from_inspector)
        self.preview_ctl.sync_changed.connect(self.inspector.set_sync)
        self.preview_ctl.sync_changed.connect(self._update_sync_badge)
        self._export: Any = None  # the open export dialog, which lists the scores too

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.preview)
        split.addWidget(self.timeline)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([440, 400])
        split.setChildrenCollapsible(False)
        self.setCentralWidget(split)
        dock = QDockWidget("Inspector", self)
        dock.setObjectName("inspector")
        dock.setWidget(self.inspector)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [320], Qt.Orientation.Horizontal)

        # status bar
        self.status_job = QLabel("")
        self.status_device = QLabel("")
        self.status_save = QLabel("")
        sb = self.statusBar()
        sb.addWidget(self.status_job, 1)
        sb.addPermanentWidget(self.status_save)
        sb.addPermanentWidget(self.status_device)

        # playback
        self.playing = False
        self.speed = 1.0
        self._play_origin = (0.0, 0.0)  # (wall clock, playhead) when play started
        self._play_timer = QTimer(self)
        self._play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._play_timer.setInterval(15)
        self._play_timer.timeout.connect(self._tick)
        self.audio: Any = None  # app.playback.AudioPlayer once created
        self._prepared_signature: tuple = ()
        self._speakers_timer = QTimer(self)
        self._speakers_timer.setSingleShot(True)
        self._speakers_timer.setInterval(800)
        self._speakers_timer.timeout.connect(self.prepare_speakers)

        self._build_actions()
        self.doc.state_changed.connect(self._update_state)
        self.doc.changed.connect(self._on_doc_changed)
        self.doc.autosaved.connect(lambda _p: self.status_save.setText(f"Autosaved {time.strftime('%H:%M:%S')}"))
        self._update_state()
        self._update_device_label()
        self.doc.new()

    # ------------------------------------------------------------------------------------------
    # actions, menus, toolbar
    # ------------------------------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: Any = None, icon_name: str | None = None, tip: str = "", checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if icon_name:
            act.setIcon(icon(icon_name))
        if shortcut is not None:
            if isinstance(shortcut, list):
                act.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.setCheckable(checkable)
        if tip or shortcut is not None:
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{tip or text.replace('…', '').replace('&', '')}" + (f" ({keys})" if keys else ""))
        act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        S = QKeySequence.StandardKey
        a: dict[str, QAction] = {}
        self.actions_by_name = a
        a["new"] = self._action("&New project", self.new_project, S.New)
        a["open"] = self._action("&Open project…", self.open_project_dialog, S.Open, "open")
        a["open_video"] = self._action("Open &video…", self.open_video_dialog, "Ctrl+Shift+O", "video", "Open a video")
        a["add_track"] = self._action("Add &dub track…", self.add_tracks_dialog, "Ctrl+T", "audio", "Add dubbed audio")
        a["save"] = self._action("&Save", self.save, S.Save, "save")
        a["save_as"] = self._action("Save &as…", self.save_as_dialog, "Ctrl+Shift+S")
        a["export"] = self._action("&Export…", self.export_dialog, "Ctrl+E", "export", "Export the dubbed video")
        a["quit"] = self._action("&Quit", self.close, S.Quit)
        a["undo"] = self._action("&Undo", self.doc.undo, "Ctrl+Z", "undo")
        a["redo"] = self._action("&Redo", self.doc.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
        a["delete"] = self._action("&Remove selected", self.remove_selected, S.Delete)
        a["settings"] = self._action("&Settings…", self.settings_dialog, "Ctrl+,", "settings")
        a["side"] = self._action("&Side by side", lambda: self.set_preview_mode("side"), "1", "side-by-side", checkable=True)
        a["wipe"] = self._action("&Wipe", lambda: self.set_preview_mode("wipe"), "2", "wipe", checkable=True)
        a["mouth"] = self._action("&Mouth zoom", self.toggle_mouth_zoom, "M", "mouth", checkable=True)
        a["zoom_in"] = self._action("Zoom &in timeline", lambda: self._zoom(1.5), "Ctrl+=")
        a["zoom_out"] = self._action("Zoom &out timeline", lambda: self._zoom(1 / 1.5), "Ctrl+-")
        a["zoom_fit"] = self._action("&Fit timeline", lambda: self.timeline.canvas.zoom_to_fit(), "Ctrl+0")
        a["play"] = self._action("&Play / pause", self.toggle_play, "Space", "play")
        a["back"] = self._action("Play &backwards (J)", lambda: self.shuttle(-1), "J")
        a["stop"] = self._action("Pause (&K)", self.pause, "K")
        a["fwd"] = self._action("Play &forwards (L)", lambda: self.shuttle(1), "L")
        a["prev"] = self._action("Previous frame", lambda: self.step(-1), "Left", "step-back")
        a["next"] = self._action("Next frame", lambda: self.step(1), "Right", "step-forward")
        a["home"] = self._action("Go to start", lambda: self.seek(0.0), "Home")
        a["end"] = self._action("Go to end", lambda: self.seek(self.session.duration_s), "End")
        a["logs"] = self._action("Open &log folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_dir()))), None)
        a["about"] = self._action("&About Lipdub Studio", self.about, None)
        a["side"].setChecked(True)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for k in ("new", "open"):
            m.addAction(a[k])
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        m.addSeparator()
        m.addAction(a["open_video"])
        m.addAction(a["add_track"])
        m.addSeparator()
        m.addAction(a["save"])
        m.addAction(a["save_as"])
        m.addAction(a["export"])
        m.addSeparator()
        m.addAction(a["quit"])
        m = mb.addMenu("&Edit")
        for k in ("undo", "redo"):
            m.addAction(a[k])
        m.addSeparator()
        m.addAction(a["delete"])
        m.addSeparator()
        m.addAction(a["settings"])
        m = mb.addMenu("&View")
        for k in ("side", "wipe", "mouth"):
            m.addAction(a[k])
        m.addSeparator()
        for k in ("zoom_in", "zoom_out", "zoom_fit"):
            m.addAction(a[k])
        m = mb.addMenu("&Playback")
        for k in ("play", "back", "stop", "fwd"):
            m.addAction(a[k])
        m.addSeparator()
        for k in ("prev", "next", "home", "end"):
            m.addAction(a[k])
        m = mb.addMenu("&Help")
        m.addAction(a["logs"])
        m.addAction(a["about"])

        tb = QToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setIconSize(QSize(20, 20))
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        for k in ("open_video", "add_track", "open", "save"):
            tb.addAction(a[k])
        tb.addSeparator()
        tb.addAction(a["undo"])
        tb.addAction(a["redo"])
        tb.addSeparator()
        for k in ("prev", "play", "next"):
            tb.addAction(a[k])
        self.time_label = QLabel("0:00.00")
        self.time_label.setMinimumWidth(140)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        tb.addWidget(self.time_label)
        tb.addSeparator()
        for k in ("side", "wipe", "mouth"):
            tb.addAction(a[k])
        spacer = QWidget()
        spacer.setSizePolicy(spacer.sizePolicy().horizontalPolicy().Expanding, spacer.sizePolicy().verticalPolicy().Preferred)
        tb.addWidget(spacer)
        tb.addAction(a["settings"])
        tb.addAction(a["export"])
        self.addToolBar(tb)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent:
            act = self.recent_menu.addAction(Path(path).name.removesuffix(PROJECT_SUFFIX))
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_project(p))
        if not self.settings.recent:
            act = self.recent_menu.addAction("No recent projects")
            act.setEnabled(False)

    def _update_state(self) -> None:
        a = self.actions_by_name
        stack = self.doc.stack
        a["undo"].setEnabled(stack.can_undo)
        a["redo"].setEnabled(stack.can_redo)
        a["undo"].setText(f"&Undo {stack.undo_label}" if stack.can_undo else "&Undo")
        a["redo"].setText(f"&Redo {stack.redo_label}" if stack.can_redo else "&Redo")
        a["undo"].setToolTip(f"Undo {stack.undo_label} (Ctrl+Z)" if stack.can_undo else "Nothing to undo")
        a["redo"].setToolTip(f"Redo {stack.redo_label} (Ctrl+Shift+Z)" if stack.can_redo else "Nothing to redo")
        has_video = self.doc.project.video is not None
        for k in ("play", "prev", "next", "home", "end", "back", "fwd", "stop"):
            a[k].setEnabled(has_video)
        a["export"].setEnabled(has_video)
        self.setWindowTitle(f"{self.doc.title.rstrip(' •')}[*] — Lipdub Studio")
        self.setWindowModified(self.doc.modified)

    def _update_device_label(self) -> None:
        """Show the device the setting resolves to (resolved in a worker: it imports torch)."""
        from app.settings import resolve_device_text

        choice = self.settings.device
        self.compute_device = ""
        self.status_device.setText(f"Device: {choice}, checking…")
        self.status_device.setToolTip(
            f"Compute device chosen in Settings: {choice}, as the engine resolves it. In this version face "
            "analysis, speech detection, the preview and the export run on the CPU: none of them takes a device yet.")

        def shown(text: str) -> None:
            self.compute_device = text
            self.status_device.setText(f"Device: {text}")

        def finished() -> None:
            if not self.compute_device:
                err = next((e for a, e in reversed(self.errors) if a == "Checking the compute device"), None)
                text = err.user_text() if isinstance(err, LipdubError) else "could not be checked"
                self.status_device.setText(f"Device ({choice}): ✖ {text}")

        self.run_job("device", lambda progress, cancel: resolve_device_text(choice), "Checking the compute device",
                     on_result=shown, dialog=False, on_done=finished)

    # ------------------------------------------------------------------------------------------
    # errors and jobs
    # ------------------------------------------------------------------------------------------
    def report_error(self, exc: BaseException, action: str, dialog: bool = True) -> None:
        self.errors.append((action, exc))
        text = exc.user_text() if isinstance(exc, LipdubError) else f"{type(exc).__name__}: {exc}"
        self.status_job.setText(f"{action} failed: {text}")
        if dialog and self.show_error_dialogs and not self._closing:
            show_error(self, exc, action)
        elif isinstance(exc, LipdubError):
            log.warning("%s failed: %s", action, text)
        else:
            log.error("%s failed", action, exc_info=exc)

    def run_job(self, key: str, fn: Any, action: str, *, on_result: Any, on_progress: Any = None, dialog: bool = True, on_done: Any = None) -> Worker:
        """Start a named background job; a job with the same key is cancelled first."""
        old = self._jobs.pop(key, None)
        if old is not None:
            old.cancel()

        def finished(key: str = key) -> None:
            if self._jobs.get(key) is worker:
                del self._jobs[key]
            if on_done is not None:
                on_done()

        worker = self.pool.start(
            fn,
            key,
            on_result=on_result,
            on_error=lambda exc: self.report_error(exc, action, dialog),
            on_progress=on_progress,
            on_finished=finished,
        )
        self._jobs[key] = worker
        return worker

    @property
    def busy(self) -> bool:
        return bool(self.pool.running)

    def push(self, command: Command, merge: bool = True) -> bool:
        """Apply an engine command; a refused edit is reported, not raised."""
        try:
            self.doc.push(command, merge)
        except LipdubError as exc:
            self.report_error(exc, command.label)
            return False
        return True

    # ------------------------------------------------------------------------------------------
    # media
    # ------------------------------------------------------------------------------------------
    def open_video_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", VIDEO_FILTER)
        if path:
            self.open_video(path)

    def open_video(self, path: str | Path) -> None:
        """Probe the file in the background, then make it the project's video (one undo step)."""
        path = Path(path).absolute()
        self.status_job.setText(f"Opening {path.name}…")
        self.session.video_status = "Reading the video…"
        self.session.notify()

        def done(probed: ProbedVideo) -> None:
            self._probed[probed.path] = probed
            self.push(SetVideo(Video(probed.path, probed.content_hash, probed.probe_dict)), False)
            self.status_job.setText(f"Opened {path.name}")

        self.run_job("probe", lambda progress, cancel: probe_video(path, progress, cancel), f"Opening the video {path.name}", on_result=done)

    def add_tracks_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add dubbed audio", "", AUDIO_FILTER)
        if paths:
            self.add_tracks(paths)

    def add_tracks(self, paths: list[str] | list[Path]) -> list[str]:
        """Add dub tracks (one undo step); returns their ids. Loading happens in the background."""
        cmds: list[Command] = []
        ids = []
        for p in paths:
            path = Path(p).absolute()
            track = DubTrack(new_id("track"), path, language=guess_language(path))
            self._language_placeholders[track.id] = track.language
            cmds.append(AddTrack(track))
            ids.append(track.id)
        if not cmds:
            return []
        cmd = cmds[0] if len(cmds) == 1 else MacroCommand(f"Add {len(cmds)} dub tracks", cmds)
        return ids if self.push(cmd, False) else []

    def _on_doc_changed(self) -> None:
        self._sync_media()
        signature = self._lipsync_signature()
        if signature != self._prepared_signature:
            self._prepared_signature = signature
            self.preview_ctl.renderer.prepared_project = None
            self.preview_ctl.renderer.lipsync_note = "Preparing the speaker models…" if signature else ""
            self.preview_ctl.set_sync({})  # a score of the old assignments is no score of the new ones
            self._speakers_timer.start()  # prepare once the edits settle
            self.preview_ctl.invalidate()
            self._reshow()
        self._update_sync_badge()  # the assignments, their names or their times may have changed

    def _reshow(self) -> None:
        if self.preview_ctl.current is not None and self.session.video is not None:
            self.preview_ctl.show(self.session.video.frame_at(self.playhead))

    def _lipsync_signature(self) -> tuple:
        p = self.doc.project
        if p.video is None or not p.assignments:
            return ()
        tracks = {t.id: t for t in p.tracks}
        parts = [(a.identity_id, a.start_s, a.end_s, str(t.path), t.offset_s, t.trim_in_s, t.trim_out_s)
                 for a in p.assignments if (t := tracks.get(a.track_id)) is not None]
        return (self.settings.engine, self.settings.device, str(p.video.path), *parts)

    @property
    def sync_pending(self) -> bool:
        """Whether the speakers of the current assignments are being prepared (or are about to be), so
        their predicted lip-sync scores are still to come."""
        return (bool(self._prepared_signature) and self.preview_ctl.renderer.prepared_project is None
                and (self._speakers_timer.isActive() or "speakers" in self._jobs))

    def _active_assignments(self) -> list[Assignment]:
        """The assignments at the playhead, the one the reviewer looks at first: the selected assignment,
        else the selected person's (or the selected assignment's person's), else the first."""
        p, t = self.doc.project, self.playhead
        active = ([a for a in p.assignments if a.start_s <= t < a.end_s]
                  or [a for a in p.assignments if a.start_s <= t <= a.end_s])
        kind, key = self.timeline.canvas.selected
        person = key if kind == "person" else next((a.identity_id for a in p.assignments if a.id == key), None)

        def rank(a: Assignment) -> int:
            return 0 if kind == "assignment" and a.id == key else 1 if a.identity_id == person else 2

        return sorted(active, key=rank)

    def _update_sync_badge(self, *_args: Any) -> None:
        """The preview's lip-sync badge: the predicted score of the assignment at the playhead (see
        :meth:`_active_assignments`), "measuring…" while it is being prepared, nothing otherwise. The
        scores are the inspector's (``preview_ctl.sync``), cleared by the same edits."""
        active = self._active_assignments()
        if not active or self.session.video is None:
            self.preview.set_sync_badge("")
            return
        p, sync = self.doc.project, self.preview_ctl.sync
        score = sync.get(active[0].id)
        if score is not None:
            text, state = sync_badge_text(score)
        elif self.sync_pending:
            text, state = "Lip sync: measuring…", "pending"
        else:
            self.preview.set_sync_badge("")  # not prepared (the preview says why)
            return
        if len({a.identity_id for a in p.assignments}) > 1:  # say whose mouth it is
            person = next((i.name or i.id for i in p.identities if i.id == active[0].identity_id), "")
            text = f"{person} · {text[0].lower()}{text[1:]}" if person else text
        lines = [f"{assignment_text(p, a)}: "
                 + (sync_value_text(sync[a.id]) if a.id in sync else "measuring…" if self.sync_pending else "not known")
                 for a in active]
        self.preview.set_sync_badge(text, state, "\n".join(lines) + "\n\n" + SYNC_TOOLTIP)

    def prepare_speakers(self) -> None:
        """Fit the assigned speakers for the lip-synced preview, in the background."""
        renderer = self.preview_ctl.renderer
        if not self._prepared_signature or self.session.video is None:
            return
        project = self.doc.stack.snapshot()
        signature = self._prepared_signature
        renderer.lipsync_note = "Preparing the speaker models…"

        def on_progress(p: Any) -> None:
            renderer.lipsync_note = f"Preparing the speaker models: {p.fraction * 100:.0f}%"
            self.status_job.setText(renderer.lipsync_note)

        def done(ready: LipsyncReady) -> None:
            if signature != self._prepared_signature:
                return
            renderer.prepared_project = ready.project
            renderer.lipsync_note = ""
            self.preview_ctl.set_sync(ready.sync)
            self._update_sync_badge()  # also when there is no score: "measuring" is over
            self._update_export_sync()
            self.status_job.setText("Speaker models ready")
            self.preview_ctl.invalidate()
            self._reshow()

        def finished() -> None:
            if renderer.prepared_project is None and signature == self._prepared_signature:
                err = next((e for a, e in reversed(self.errors) if a == "Preparing the speaker models"), None)
                text = err.user_text() if isinstance(err, LipdubError) else "it did not finish"
                renderer.lipsync_note = f"No lip-synced preview: {text}"
                self.preview_ctl.invalidate()
                self._reshow()
            self._update_sync_badge()
            self._update_export_sync()

        engine, device = self.settings.engine, self.settings.device
        self.run_job("speakers", lambda progress, cancel: renderer.prepare_lipsync(project, progress, cancel,
                                                                                   engine, device),
                     "Preparing the speaker models", on_result=done, on_progress=on_progress, dialog=False,
                     on_done=finished)

    def _sync_media(self) -> None:
        """Bring the session (video info, thumbnails, analysis, track waveforms) in line with the document."""
        project = self.doc.project
        video_path = project.video.path if project.video else None
        if video_path != self._loaded_video:
            self._loaded_video = video_path
            self._load_video(video_path)
        for track in project.tracks:
            if track.id not in self.session.tracks:
                if not track.path.is_file():  # reported once by the missing-media warning
                    self.session.tracks[track.id] = TrackView(status="", error="File not found")
                    continue
                self.session.tracks[track.id] = TrackView(language_placeholder=self._language_placeholders.get(track.id))
                self._load_track(track.id, track.path)
        for tid in [t for t in self.session.tracks if all(t != tr.id for tr in project.tracks)]:
            del self.session.tracks[tid]
        self.session.notify()

    def _load_video(self, path: Path | None) -> None:
        for key in ("thumbs", "analysis", "probe", "speakers"):
            job = self._jobs.pop(key, None)
            if job is not None:
                job.cancel()
        self.session.video = None
        self.session.thumbnails = []
        self.session.people = {}
        self.session.analysis = None
        self.session.analysis_progress = None
        self.session.analysis_status = ""
        self.preview_ctl.set_video(None, 0)
        self.preview.set_pair(None)
        if path is None:
            self.session.video_status = ""
            self.session.notify()
            return
        probed = self._probed.get(path)
        if probed is None and not path.is_file():  # reported once by the missing-media warning
            self.session.video_status = "Video file not found"
            self.session.notify()
            return
        if probed is None:
            self.session.video_status = "Reading the video…"
            def probed_now(p: ProbedVideo) -> None:
                self._probed[p.path] = p
                self._video_ready(p)

            self.run_job("probe", lambda progress, cancel: probe_video(path, progress, cancel), f"Opening the video {path.name}",
                         on_result=probed_now)
        else:
            self._video_ready(probed)

    def _video_ready(self, probed: ProbedVideo) -> None:
        if probed.path != self._loaded_video:
            return  # the project moved on meanwhile
        s = self.session
        s.video = VideoInfo(probed.duration_s, probed.fps, probed.width, probed.height, probed.frame_count, probed.info)
        s.video_status = ""
        self.preview_ctl.set_video(probed.path, probed.frame_count)
        self.preview.message = "Loading the first frame…"
        self.timeline.canvas.zoom_to_fit()
        self.seek(min(self.timeline.canvas.playhead, probed.duration_s))
        path = probed.path

        def thumbs_done(result: list) -> None:
            if path == self._loaded_video:
                s.thumbnails = result
                s.notify()

        self.run_job("thumbs", lambda progress, cancel: thumbnails(path, progress=progress, cancel=cancel),
                     "Making thumbnails", on_result=thumbs_done, dialog=False)
        self.start_analysis()
        s.notify()

    def _load_track(self, track_id: str, path: Path) -> None:
        def done(loaded: TrackData) -> None:
            view = self.session.tracks.get(track_id)
            if view is None:
                return
            view.duration_s = loaded.duration_s
            view.peaks = loaded.peaks
            view.segments = loaded.segments
            view.status = loaded.note
            view.error = ""
            view.language = loaded.language
            self._apply_detected_language(track_id, view)
            self.session.notify()

        def failed_status() -> None:
            view = self.session.tracks.get(track_id)
            if view is not None and view.duration_s is None and view.status.startswith("Loading"):
                view.status = ""
                view.error = "Could not read this file"
                self.session.notify()

        self.run_job(f"track:{track_id}", lambda progress, cancel: load_track(path, progress, cancel),
                     f"Reading the dub track {path.name}", on_result=done, on_done=failed_status)

    def _apply_detected_language(self, track_id: str, view: TrackView) -> None:
        """Set a confidently detected language as the track's tag (one undo step), unless the user
        chose one: they typed it in the inspector, or the tag is no longer the placeholder the track
        was added with (or 'und' for a track from a saved project)."""
        detected = view.language
        if detected is None or not detected.confident or view.language_user_set:
            return
        try:
            track = self.doc.project.track(track_id)
        except KeyError:
            return  # removed meanwhile
        placeholder = view.language_placeholder or "und"
        if track.language != placeholder or track.language == detected.code:
            return
        cmd = MacroCommand(f"Set detected language {detected.code}", [SetTrackLanguage(track_id, detected.code)])
        if self.push(cmd, False):
            view.language_placeholder = detected.code

    # --- face analysis -------------------------------------------------------------------------
    def start_analysis(self) -> None:
        s = self.session
        video = self.doc.project.video
        if video is None:
            return
        s.analysis_progress = 0.0
        s.analysis_status = "starting"
        s.notify()
        path = video.path
        settings = self.settings

        def job(progress: Any, cancel: Any) -> Any:
            from app.faces_bridge import run_analysis

            return run_analysis(path, settings, progress=progress, cancel=cancel)

        def on_progress(p: Any) -> None:
            s.analysis_progress = p.fraction
            eta = f", about {p.eta_s:.0f} s left" if p.eta_s else ""
            s.analysis_status = (p.message or p.stage) + eta
            self.status_job.setText(f"Finding people: {p.fraction * 100:.0f}%{eta}")
            s.notify()

        def done(result: Any) -> None:
            if path != self._loaded_video:
                return
            self._analysis_ready(result)

        def finished() -> None:
            if s.analysis_progress is not None and s.analysis is None:
                s.analysis_progress = None
                s.analysis_status = s.analysis_status if s.analysis_status.startswith("Stopped") else "Face analysis did not finish."
                s.notify()

        self.run_job("analysis", job, "Finding the people in the video", on_result=done, on_progress=on_progress, on_done=finished)

    def _analysis_ready(self, result: Any) -> None:
        from app.faces_bridge import people_views

        s = self.session
        s.analysis = result.analysis
        s.analysis_progress = None
        views = people_views(result)
        s.people = views
        message = getattr(result.analysis, "message", "")
        s.analysis_status = (f"{len(views)} person found" if len(views) == 1 else f"{len(views)} people found") if views else (message or "No faces found in this video.")
        self.preview_ctl.renderer.analysis = result
        self.preview_ctl.invalidate()
        existing = {i.id for i in self.doc.project.identities}
        start = len(self.doc.project.identities)
        new = [FaceIdentity(pid, f"Person {start + k + 1}") for k, pid in enumerate(p for p in views if p not in existing)]
        if new:
            cmds: list[Command] = [AddIdentity(i) for i in new]
            self.push(cmds[0] if len(cmds) == 1 else MacroCommand(f"Add {len(cmds)} people found in the video", cmds), False)
        self.status_job.setText(s.analysis_status)
        s.notify()

    # ------------------------------------------------------------------------------------------
    # timeline intents
    # ------------------------------------------------------------------------------------------
    def _on_selection(self, kind: str, key: str) -> None:
        self.inspector.show_item(kind, key)
        self._update_sync_badge()

    def _select_from_inspector(self, kind: str, key: str) -> None:
        self.timeline.canvas.selected = (kind, key)
        self.timeline.canvas.update()
        self.inspector.show_item(kind, key)
        self._update_sync_badge()

    def _on_offset_drag(self, track_id: str, offset: float, finished: bool) -> None:
        if finished:
            self.doc.end_merge()
        else:
            self.push(SetTrackOffset(track_id, offset), True)

    def _on_trim_drag(self, track_id: str, trim_in: float, trim_out: float | None, offset: float) -> None:
        """A dragged clip edge: the new trim (and, for the start edge, the offset) as one undo step."""
        cmds: list[Command] = [SetTrackTrim(track_id, trim_in, trim_out)]
        if offset != self.doc.project.track(track_id).offset_s:
            cmds.append(SetTrackOffset(track_id, offset))
        self.push(MacroCommand("Trim track", cmds), False)

    def assign(self, track_id: str, identity_id: str, start_s: float | None = None, end_s: float | None = None) -> str | None:
        """Assign a dub track to a person over a range (default: where the placed track overlaps the video)."""
        track = self.doc.project.track(track_id)
        view = self.session.tracks.get(track_id)
        video_end = self.session.duration_s or None
        if start_s is None:
            start_s = max(0.0, track.offset_s)
        if end_s is None:
            length = None
            if view is not None and view.duration_s:
                out = track.trim_out_s if track.trim_out_s is not None else view.duration_s
                length = out - track.trim_in_s
            end_s = track.offset_s + length if length is not None else (video_end or start_s + 1.0)
            if video_end is not None:
                end_s = min(end_s, video_end)
        a = Assignment(new_id("assign"), track_id, identity_id, float(start_s), float(end_s))
        if self.push(AddAssignment(a), False):
            self.timeline.canvas.selected = ("assignment", a.id)
            self.inspector.show_item("assignment", a.id)
            self._update_sync_badge()
            return a.id
        return None

    def remove_selected(self) -> None:
        kind, key = self.timeline.canvas.selected
        if kind == "assignment":
            self.push(RemoveAssignment(key), False)
        elif kind == "track":
            self.push(RemoveTrack(key), False)

    # ------------------------------------------------------------------------------------------
    # preview and playback
    # ------------------------------------------------------------------------------------------
    @property
    def playhead(self) -> float:
        return self.timeline.canvas.playhead

    def seek(self, t: float) -> None:
        dur = self.session.duration_s
        t = max(0.0, min(t, dur)) if dur > 0 else 0.0
        self.timeline.canvas.set_playhead(t, ensure_visible=not self.timeline.canvas._drag)
        self.time_label.setText(self._time_text(t))
        self._update_sync_badge()
        video = self.session.video
        if video is not None:
            self.preview_ctl.show(video.frame_at(t))

    def _time_text(self, t: float) -> str:
        video = self.session.video
        m, sec = divmod(t, 60)
        frame = f"  #{video.frame_at(t)}" if video else ""
        return f"{int(m)}:{sec:05.2f}{frame}"

    def step(self, frames: int) -> None:
        video = self.session.video
        if video is None:
            return
        self.pause()
        index = max(0, min(video.frame_count - 1, video.frame_at(self.playhead) + frames))
        self.seek(video.frame_time(index) + 0.5 / max(video.fps, 1.0))

    def _on_frame(self, pair: FramePair) -> None:
        self.preview.set_pair(pair)

    def set_preview_mode(self, mode: str) -> None:
        self.actions_by_name["side"].setChecked(mode == "side")
        self.actions_by_name["wipe"].setChecked(mode == "wipe")
        self.preview.set_mode(mode)

    def toggle_mouth_zoom(self) -> None:
        self.preview.set_mouth_zoom(self.actions_by_name["mouth"].isChecked())

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play(1.0)

    def shuttle(self, direction: int) -> None:
        """J / L: play backwards / forwards; pressing again doubles the speed (up to 8x)."""
        if self.playing and (self.speed > 0) == (direction > 0):
            self.play(max(-8.0, min(8.0, self.speed * 2)))
        else:
            self.play(float(direction))

    def play(self, speed: float = 1.0) -> None:
        if self.session.video is None:
            return
        if speed > 0 and self.playhead >= self.session.duration_s - 1e-3:
            self.seek(0.0)
        self.speed = speed
        self.playing = True
        self._play_origin = (time.monotonic(), self.playhead)
        self._play_timer.start()
        self.actions_by_name["play"].setIcon(icon("pause"))
        if self.audio is None:
            from app.playback import AudioPlayer

            self.audio = AudioPlayer(self.doc, self.pool, self)
        self.audio.start(self.playhead, speed)

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self._play_timer.stop()
        self.preview.set_status("")
        self.actions_by_name["play"].setIcon(icon("play"))
        if self.audio is not None:
            self.audio.stop()

    def _tick(self) -> None:
        video = self.session.video
        if video is None:
            self.pause()
            return
        wall0, t0 = self._play_origin
        clock = self.audio.position() if self.audio is not None and self.audio.active else None
        t = clock if clock is not None else t0 + (time.monotonic() - wall0) * self.speed
        if t >= video.duration_s or (t <= 0 and self.speed < 0):
            self.seek(max(0.0, min(t, video.duration_s)))
            self.pause()
            return
        self.timeline.canvas.set_playhead(t)
        self.time_label.setText(self._time_text(t))
        self._update_sync_badge()
        target = video.frame_at(t)
        current = self.preview_ctl.current
        behind = current is None or abs(current.index - target) > max(2, int(video.fps * 0.15))
        if current is None or current.index != target:
            if target in self.preview_ctl.cache or not self.preview_ctl.busy:
                self.preview_ctl.show(target)
        self.preview.set_status("Catching up — showing ready frames" if behind else "")

    # ------------------------------------------------------------------------------------------
    # projects
    # ------------------------------------------------------------------------------------------
    def confirm_discard(self) -> bool:
        """Ask whether to save unsaved changes; False cancels the operation."""
        if not self.doc.modified:
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"Save the changes to “{self.doc.title.rstrip(' •')}” first?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_project(self) -> None:
        if self.confirm_discard():
            self.pause()
            self.doc.new()

    def open_project_dialog(self) -> None:
        if not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", PROJECT_FILTER + ";;All files (*)")
        if path:
            self.open_project(path, confirm=False)

    def open_project(self, path: str | Path, confirm: bool = True) -> bool:
        if confirm and not self.confirm_discard():
            return False
        self.pause()
        try:
            self.doc.open(path)
        except (LipdubError, OSError) as exc:
            self.report_error(exc, "Opening the project")
            return False
        self.settings.add_recent(path)
        self._warn_missing_media()
        return True

    def _warn_missing_media(self) -> None:
        from engine.project.store import missing_media

        missing = missing_media(self.doc.project)
        if missing:
            names = "\n".join(str(p) for p in missing[:8])
            self.status_job.setText(f"{len(missing)} media file(s) not found")
            if self.show_error_dialogs:
                box = QMessageBox(QMessageBox.Icon.Warning, "Media not found",
                                  f"These files of the project were not found:\n\n{names}\n\n"
                                  "Locate the first one: others that moved along with it are found too.",
                                  QMessageBox.StandardButton.Ignore, self)
                locate = box.addButton("Locate…", QMessageBox.ButtonRole.AcceptRole)
                box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
                box.buttonClicked.connect(lambda b: self._locate(missing[0]) if b is locate else None)
                box.open()

    def _locate(self, old: Path) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Where is {old.name}?", "", f"{old.name};;All files (*)")
        if path:
            self.relink_media(old, path)

    def relink_media(self, old: str | Path, new: str | Path) -> int:
        """Point the project's references to a moved file (and missing files that moved along with it,
        as the engine's ``relink`` finds them) at their new place, as one undo step. Returns how many."""
        import copy

        from engine.project.commands import SetTrackPath
        from engine.project.store import relink

        trial = copy.deepcopy(self.doc.project)
        relink(trial, old, new)
        cmds: list[Command] = []
        current = self.doc.project
        if current.video is not None and trial.video is not None and trial.video.path != current.video.path:
            cmds.append(SetVideo(Video(trial.video.path, current.video.content_hash, current.video.probe)))
        for before, after in zip(current.tracks, trial.tracks, strict=True):
            if after.path != before.path:
                cmds.append(SetTrackPath(before.id, after.path))
        if not cmds:
            return 0
        for track in self.doc.project.tracks:  # tracks not loaded yet load from their new place
            view = self.session.tracks.get(track.id)
            if view is not None and view.duration_s is None:
                del self.session.tracks[track.id]
        self.push(cmds[0] if len(cmds) == 1 else MacroCommand(f"Relink {len(cmds)} files", cmds), False)
        self.status_job.setText(f"Relinked {len(cmds)} file{'s' if len(cmds) > 1 else ''}")
        return len(cmds)

    def restore_autosave(self, autosave: str | Path, original_path: str | None) -> bool:
        """Load an autosave left by a session that did not close cleanly (it counts as unsaved)."""
        from engine.project.store import load_project

        try:
            project = load_project(autosave)
        except LipdubError as exc:
            self.report_error(exc, "Restoring the autosaved project")
            return False
        self.doc.replace(project, Path(original_path) if original_path else None, modified=True)
        self.status_job.setText("Restored the autosaved project: save it to keep it")
        return True

    def save(self) -> bool:
        if self.doc.path is None:
            return self.save_as_dialog()
        return self.save_to(self.doc.path)

    def save_as_dialog(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(self.doc.path or "Untitled" + PROJECT_SUFFIX), PROJECT_FILTER)
        return bool(path) and self.save_to(path)

    def save_to(self, path: str | Path) -> bool:
        try:
            target = self.doc.save(path)
        except (LipdubError, OSError) as exc:
            self.report_error(exc, "Saving the project")
            return False
        self.settings.add_recent(target)
        self.status_save.setText(f"Saved {time.strftime('%H:%M:%S')}")
        return True

    # ------------------------------------------------------------------------------------------
    # dialogs
    # ------------------------------------------------------------------------------------------
    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self.pool, self)
        if dlg.exec():
            self.settings = dlg.result_settings()
            self.settings.save()
            self._update_device_label()
            self._on_doc_changed()  # a new engine or device re-prepares the lip-synced preview
        dlg.deleteLater()

    def export_dialog(self) -> None:
        from app.export_dialog import ExportDialog

        if self.doc.project.video is None:
            return
        self.pause()
        dlg = ExportDialog(self.doc, self.pool, self)
        self._export = dlg
        self._update_export_sync()
        try:
            dlg.exec()
        finally:
            self._export = None
        dlg.deleteLater()

    def _update_export_sync(self) -> None:
        """Give the open export dialog the predicted lip-sync scores. The preview's scores belong to the
        current assignments (any change of them clears them), so they are the export's too; while they
        are being prepared, or when they could not be, the dialog says so (and fills in when they come)."""
        dlg = self._export
        if dlg is None:
            return
        ctl = self.preview_ctl
        if ctl.renderer.prepared_project is not None and ctl.sync:
            dlg.set_sync(dict(ctl.sync))
        elif self.sync_pending:
            dlg.set_sync(None, "the preview is still preparing the speaker models; the scores appear here "
                               "when it is done")
        else:
            note, failed = ctl.renderer.lipsync_note, "No lip-synced preview: "
            dlg.set_sync(None, f"the preview could not prepare the speaker models ({note.removeprefix(failed)})"
                         if note.startswith(failed) else "the speaker models are not prepared for the preview")

    def about(self) -> None:
        from engine import __version__

        QMessageBox.about(self, "About Lipdub Studio",
                          f"<b>Lipdub Studio</b> {__version__}<br>Regenerates each speaker's mouth so a dubbed "
                          f"video's lips match the new audio.<br><br>Log files: {log_dir()}")

    def _zoom(self, factor: float) -> None:
        c = self.timeline.canvas
        c.set_zoom(c.px_per_s * factor)

    # ------------------------------------------------------------------------------------------
    # drag and drop, closing
    # ------------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and any(media_kind(Path(u.toLocalFile())) or u.toLocalFile().endswith(PROJECT_SUFFIX) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def open_paths(self, paths: list[Path]) -> None:
        """What a drop does: a project opens, a video becomes the project's video, audio adds tracks."""
        projects = [p for p in paths if p.name.endswith(PROJECT_SUFFIX)]
        if projects:
            self.open_project(projects[0])
            return
        videos = [p for p in paths if media_kind(p) == "video"]
        audio = [p for p in paths if media_kind(p) == "audio"]
        if videos:
            self.open_video(videos[0])
        if audio:
            self.add_tracks(audio)
        unknown = [p for p in paths if not media_kind(p)]
        if unknown and not videos and not audio:
            self.report_error(LipdubError("is not a video or audio file Lipdub Studio knows", path=unknown[0],
                                          hint="drop a video (mp4, mov, mkv…) or dubbed audio (wav, mp3, m4a…)"), "Opening the file")

    def shutdown(self) -> None:
        """Stop playback and background work, wait for the workers (also used by tests)."""
        self._closing = True
        self.pause()
        if self.audio is not None:
            self.audio.close()
        self.preview_ctl.shutdown()
        self.pool.shutdown()
        self.doc.close_cleanly()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing and not self.confirm_discard():
            event.ignore()
            return
        self.shutdown()
        event.accept()


