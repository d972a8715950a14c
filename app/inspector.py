"""The inspector: properties of the selected person, dub track or assignment, edited through engine
commands. Spin boxes merge into one undo step per edit (the stack merges; ``editingFinished`` ends it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.document import Document
from app.models import IdentitiesModel, IdRole, TracksModel
from app.session import Session, TrackView
from engine.project.commands import (
    AddAssignment,
    Command,
    EditAssignment,
    RemoveAssignment,
    RemoveTrack,
    RenameIdentity,
    SetTrackGain,
    SetTrackLanguage,
    SetTrackName,
    SetTrackOffset,
    SetTrackTrim,
)
from engine.project.model import Assignment, new_id


def _spin(minimum: float, maximum: float, suffix: str, decimals: int = 2, step: float = 0.1) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    box.setAccelerated(True)
    return box


def language_text(tag: str, view: TrackView | None) -> str:
    """Where the track's language tag comes from: "de (detected, 98%)", a guess, or why none."""
    if view is None:
        return ""
    det = view.language
    if det is None:
        if view.error:
            return ""
        if view.duration_s is None:
            guess = " (guessed from the file name)" if tag != "und" and tag == view.language_placeholder else ""
            return f"{tag}{guess}; detecting the language…"
        return ""
    if det.code is not None and det.confident:
        text = f"{det.code} (detected, {det.probability:.0%})"
        if tag != det.code:
            text += f"; set to {tag} by you" if view.language_user_set else f"; kept {tag}"
        return text
    if tag == "und":
        source = " (undetermined)"
    elif view.language_user_set:
        source = " (set by you)"
    elif tag == view.language_placeholder:
        source = " (guessed from the file name)"
    else:
        source = ""
    if det.code is not None:
        why = f"not detected: {det.note} ({det.code} at {det.probability:.0%})"
    else:
        why = f"not detected: {det.note}"
    return f"{tag}{source}; {why}"


SYNC_TOOLTIP = (
    "How closely the new mouth follows the syllables of the dub; 2 or more is a clear match.\n"
    "The speaker's own number is how closely their real mouth followed their original voice.\n"
    "Predicted from the planned mouth once the speaker models are prepared for the preview."
)


def _z_text(z: float) -> str | None:
    """A score as users read it (engine score_text), except that one just below 2 never reads "2.0"
    next to "below 2": 1.96 reads 1.96."""
    from engine.lipsync.metrics import score_text

    text = score_text(z)
    if text == "2.0" and z < 2.0:
        text = f"{math.floor(z * 100) / 100:.2f}"
    return text


def sync_text(score: Any) -> str:
    """"Lip sync: 3.1" and on a second line "(the speaker's own voice: 2.8)" for an engine
    AssignmentSync; "Lip sync: —" for None (not prepared yet)."""
    if score is None:
        return "Lip sync: —"
    from engine.lipsync.metrics import score_text

    z = _z_text(score.z)
    if z is None:
        return "Lip sync: not measurable (too little of this assignment shows the face)"
    own = score_text(score.own_z)
    # Broken before the parenthesis on purpose: the inspector is narrow, and a wrap inside it reads badly.
    text = f"Lip sync: {z}" + (f"\n(the speaker's own voice: {own})" if own is not None else "")
    if score.z < 2.0:
        text += "\nBelow 2: the new mouth may not clearly follow this dub."
    return text


def sync_badge_text(score: Any) -> tuple[str, str]:
    """The preview's compact form of an engine AssignmentSync: its text and its state, "ok", "bad"
    (below 2) or "none" (not measurable)."""
    z = _z_text(score.z)
    if z is None:
        return "Lip sync: not measurable", "none"
    if score.z < 2.0:
        return f"Lip sync {z} · below 2", "bad"
    return f"Lip sync {z}", "ok"


def sync_value_text(score: Any) -> str:
    """One line for a list of assignments: "3.1 (own voice: 2.8)", "1.4, below 2 (own voice: 2.8)"; the
    own voice is the speaker's real mouth against their original voice."""
    from engine.lipsync.metrics import score_text

    z = _z_text(score.z)
    if z is None:
        return "not measurable (the face shows too little)"
    own = score_text(score.own_z)
    text = z + (", below 2" if score.z < 2.0 else "")
    return text + (f" (own voice: {own})" if own is not None else "")


def assignment_text(project: Any, a: Any) -> str:
    """ "Anna ← dub_german1.wav, 0.0–4.0 s": who says which dub, and when."""
    person = next((i.name or i.id for i in project.identities if i.id == a.identity_id), a.identity_id)
    track = next((t.display_name for t in project.tracks if t.id == a.track_id), a.track_id)
    return f"{person} ← {track}, {a.start_s:.1f}–{a.end_s:.1f} s"


class Inspector(QWidget):
    """Shows one page per selection kind. ``push`` applies a command and reports refusals."""

    select = Signal(str, str)

    def __init__(self, doc: Document, session: Session, push: Callable[[Command, bool], object], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.session = session
        self._push = push
        self.kind = ""
        self.key = ""
        self._loading = False
        self.setMinimumWidth(280)
        self.sync: dict[str, Any] = {}  # assignment id -> engine AssignmentSync, from the preview's preparation

        self.title = QLabel("Project")
        self.title.setObjectName("heading")
        self.stack = QStackedWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.addWidget(self.title)
        lay.addWidget(self.stack, 1)

        # --- overview page: the item models
        overview = QWidget()
        ol = QVBoxLayout(overview)
        ol.setContentsMargins(0, 0, 0, 0)
        self.identities_model = IdentitiesModel(doc)
        self.tracks_model = TracksModel(doc)
        ol.addWidget(QLabel("People"))
        self.people_view = QListView()
        self.people_view.setModel(self.identities_model)
        ol.addWidget(self.people_view, 1)
        ol.addWidget(QLabel("Dub tracks"))
        self.tracks_view = QListView()
        self.tracks_view.setModel(self.tracks_model)
        ol.addWidget(self.tracks_view, 1)
        self.overview_hint = QLabel()
        self.overview_hint.setObjectName("hint")
        self.overview_hint.setWordWrap(True)
        ol.addWidget(self.overview_hint)
        self.people_view.clicked.connect(lambda i: self.select.emit("person", i.data(IdRole)))
        self.tracks_view.clicked.connect(lambda i: self.select.emit("track", i.data(IdRole)))
        self.stack.addWidget(overview)

        # --- person page
        person = QWidget()
        pl = QFormLayout(person)
        self.person_thumb = QLabel()
        self.person_thumb.setFixedSize(96, 96)
        self.person_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.person_name = QLineEdit()
        self.person_name.setPlaceholderText("Name this person")
        self.person_name.editingFinished.connect(self._rename_person)
        self.person_info = QLabel()
        self.person_info.setObjectName("hint")
        self.person_info.setWordWrap(True)
        self.assign_track = QComboBox()
        self.assign_start = _spin(0, 1e6, " s")
        self.assign_end = _spin(0, 1e6, " s")
        add = QPushButton("Assign track to this person")
        add.clicked.connect(self._add_assignment)
        rng = QHBoxLayout()
        rng.addWidget(self.assign_start)
        rng.addWidget(QLabel("to"))
        rng.addWidget(self.assign_end)
        pl.addRow(self.person_thumb)
        pl.addRow("Name", self.person_name)
        pl.addRow(self.person_info)
        pl.addRow(QLabel("New assignment"))
        pl.addRow("Track", self.assign_track)
        pl.addRow("From", rng)
        pl.addRow(add)
        self.stack.addWidget(person)

        # --- track page
        track = QWidget()
        tl = QFormLayout(track)
        self.track_name = QLineEdit()
        self.track_name.editingFinished.connect(lambda: self._edit_track(lambda t: SetTrackName(t.id, self.track_name.text().strip())))
        self.track_lang = QLineEdit()
        self.track_lang.setPlaceholderText("de, fr, pt-BR …")
        self.track_lang.editingFinished.connect(self._edit_language)
        self.track_lang_note = QLabel()
        self.track_lang_note.setObjectName("hint")
        self.track_lang_note.setWordWrap(True)
        self.track_gain = _spin(-60, 24, " dB", 1, 0.5)
        self.track_gain.valueChanged.connect(lambda v: self._edit_track(lambda t: SetTrackGain(t.id, float(v)), merge=True))
        self.track_offset = _spin(-3600, 36000, " s", 3, 0.04)
        self.track_offset.valueChanged.connect(lambda v: self._edit_track(lambda t: SetTrackOffset(t.id, float(v)), merge=True))
        self.trim_in = _spin(0, 36000, " s", 3, 0.1)
        self.trim_out = _spin(0, 36000, " s", 3, 0.1)
        self.trim_out.setSpecialValueText("end of file")
        self.trim_in.valueChanged.connect(self._edit_trim)
        self.trim_out.valueChanged.connect(self._edit_trim)
        for box in (self.track_gain, self.track_offset, self.trim_in, self.trim_out):
            box.editingFinished.connect(self.doc.end_merge)
        self.track_path = QLabel()
        self.track_path.setObjectName("hint")
        self.track_path.setWordWrap(True)
        self.track_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.track_info = QLabel()
        self.track_info.setObjectName("hint")
        self.track_info.setWordWrap(True)
        remove_track = QPushButton("Remove track")
        remove_track.clicked.connect(lambda: self._edit_track(lambda t: RemoveTrack(t.id)))
        tl.addRow("Name", self.track_name)
        tl.addRow("Language", self.track_lang)
        tl.addRow("", self.track_lang_note)
        tl.addRow("Gain", self.track_gain)
        tl.addRow("Offset", self.track_offset)
        tl.addRow("Trim start", self.trim_in)
        tl.addRow("Trim end", self.trim_out)
        tl.addRow(self.track_info)
        tl.addRow(self.track_path)
        tl.addRow(remove_track)
        self.stack.addWidget(track)

        # --- assignment page
        assign = QWidget()
        al = QFormLayout(assign)
        self.a_track = QComboBox()
        self.a_person = QComboBox()
        self.a_start = _spin(0, 1e6, " s", 3, 0.04)
        self.a_end = _spin(0, 1e6, " s", 3, 0.04)
        self.a_track.activated.connect(lambda _i: self._edit_assignment(track_id=self.a_track.currentData()))
        self.a_person.activated.connect(lambda _i: self._edit_assignment(identity_id=self.a_person.currentData()))
        self.a_start.valueChanged.connect(lambda v: self._edit_assignment(start_s=float(v)))
        self.a_end.valueChanged.connect(lambda v: self._edit_assignment(end_s=float(v)))
        for box in (self.a_start, self.a_end):
            box.editingFinished.connect(self.doc.end_merge)
        remove = QPushButton("Remove assignment")
        remove.clicked.connect(self._remove_assignment)
        self.a_sync = QLabel(sync_text(None))
        self.a_sync.setObjectName("sync")
        self.a_sync.setWordWrap(True)
        self.a_sync.setToolTip(SYNC_TOOLTIP)
        self.a_sync.setContentsMargins(0, 6, 0, 6)
        al.addRow("Track", self.a_track)
        al.addRow("Person", self.a_person)
        al.addRow("From", self.a_start)
        al.addRow("To", self.a_end)
        al.addRow(self.a_sync)
        al.addRow(remove)
        self.stack.addWidget(assign)

        doc.changed.connect(self.refresh)
        session.updated.connect(self.refresh)
        self.refresh()

    # --- selection ------------------------------------------------------------------------------
    def show_item(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self.refresh()

    def set_sync(self, scores: dict[str, Any]) -> None:
        """The predicted lip-sync scores per assignment id (empty: not prepared, or being prepared again)."""
        self.sync = dict(scores)
        if self.kind == "assignment":
            self.a_sync.setText(sync_text(self.sync.get(self.key)))

    def refresh(self) -> None:
        p = self.doc.project
        self._loading = True
        try:
            if self.kind == "person" and any(i.id == self.key for i in p.identities):
                self._show_person()
            elif self.kind == "track" and any(t.id == self.key for t in p.tracks):
                self._show_track()
            elif self.kind == "assignment" and any(a.id == self.key for a in p.assignments):
                self._show_assignment()
            else:
                self.kind, self.key = "", ""
                self.title.setText("Project")
                n_people, n_tracks = len(p.identities), len(p.tracks)
                if p.video is None:
                    hint = "Open a video (Ctrl+Shift+O) or drop one onto the window."
                elif not n_tracks:
                    hint = "Add the dubbed audio: drop audio files onto the window or press Ctrl+T."
                elif not p.assignments:
                    hint = "Drag a track's coloured handle onto a person's lane to assign it."
                else:
                    hint = f"{len(p.assignments)} assignment(s). Export with Ctrl+E."
                self.overview_hint.setText(f"{n_people} people, {n_tracks} dub tracks. {hint}")
                self.stack.setCurrentIndex(0)
        finally:
            self._loading = False

    def _fill_tracks(self, combo: QComboBox, current: str | None) -> None:
        combo.clear()
        for t in self.doc.project.tracks:
            combo.addItem(f"{t.display_name} [{t.language}]", t.id)
        if current is not None:
            combo.setCurrentIndex(max(0, combo.findData(current)))

    def _show_person(self) -> None:
        ident = self.doc.project.identity(self.key)
        self.title.setText(f"Person: {ident.name or ident.id}")
        if not self.person_name.hasFocus():
            self.person_name.setText(ident.name)
        view = self.session.people.get(ident.id)
        if view is not None and view.thumbnail is not None:
            self.person_thumb.setPixmap(QPixmap.fromImage(view.thumbnail).scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        else:
            self.person_thumb.setText("no picture")
        on_screen = sum(e - s for s, e in view.ranges) if view else 0.0
        n = sum(1 for a in self.doc.project.assignments if a.identity_id == ident.id)
        self.person_info.setText(f"On screen {on_screen:.1f} s in {len(view.ranges) if view else 0} range(s); {n} assignment(s). Double-click the name in the timeline to rename.")
        current = self.assign_track.currentData()
        self._fill_tracks(self.assign_track, current)
        dur = self.session.duration_s
        if dur > 0 and self.assign_end.value() == 0:
            self.assign_end.setValue(dur)
        self.stack.setCurrentIndex(1)

    def _show_track(self) -> None:
        t = self.doc.project.track(self.key)
        self.title.setText(f"Dub track: {t.display_name}")
        if not self.track_name.hasFocus():
            self.track_name.setText(t.name)
            self.track_name.setPlaceholderText(t.path.name)
        if not self.track_lang.hasFocus():
            self.track_lang.setText(t.language)
        self.track_lang_note.setText(language_text(t.language, self.session.tracks.get(t.id)))
        for box, value in ((self.track_gain, t.gain_db), (self.track_offset, t.offset_s), (self.trim_in, t.trim_in_s), (self.trim_out, t.trim_out_s or 0.0)):
            if not box.hasFocus() or box.value() != value:
                box.setValue(value)
        view = self.session.tracks.get(t.id)
        if view is not None and view.duration_s:
            self.trim_out.setMaximum(view.duration_s)
            speech = sum(e - s for s, e in view.segments)
            self.track_info.setText(f"{view.duration_s:.2f} s long; {speech:.1f} s of speech in {len(view.segments)} segment(s).")
        else:
            self.track_info.setText(view.error or view.status if view else "")
        self.track_path.setText(str(t.path))
        self.stack.setCurrentIndex(2)

    def _show_assignment(self) -> None:
        a = self.doc.project.assignment(self.key)
        self.title.setText("Assignment")
        self._fill_tracks(self.a_track, a.track_id)
        self.a_person.clear()
        for i in self.doc.project.identities:
            self.a_person.addItem(i.name or i.id, i.id)
        self.a_person.setCurrentIndex(max(0, self.a_person.findData(a.identity_id)))
        self.a_start.setValue(a.start_s)
        self.a_end.setValue(a.end_s)
        self.a_sync.setText(sync_text(self.sync.get(a.id)))
        self.stack.setCurrentIndex(3)

    # --- edits ----------------------------------------------------------------------------------
    def _rename_person(self) -> None:
        if self._loading or self.kind != "person":
            return
        name = self.person_name.text().strip()
        if name != self.doc.project.identity(self.key).name:
            self._push(RenameIdentity(self.key, name), False)

    def _edit_track(self, make: Callable, merge: bool = False) -> None:
        if self._loading or self.kind != "track":
            return
        self._push(make(self.doc.project.track(self.key)), merge)

    def _edit_language(self) -> None:
        if self._loading or self.kind != "track" or not self.track_lang.isModified():
            return
        self.track_lang.setModified(False)
        view = self.session.tracks.get(self.key)
        if view is not None:
            view.language_user_set = True  # detection never overrides what the user typed
        self._push(SetTrackLanguage(self.key, self.track_lang.text().strip() or "und"), False)
        self.refresh()

    def _edit_trim(self) -> None:
        if self._loading or self.kind != "track":
            return
        out = self.trim_out.value()
        self._push(SetTrackTrim(self.key, self.trim_in.value(), out if out > 0 else None), True)

    def _edit_assignment(self, **changes: object) -> None:
        if self._loading or self.kind != "assignment":
            return
        self._push(EditAssignment(self.key, **changes), True)  # type: ignore[arg-type]

    def _remove_assignment(self) -> None:
        if self.kind == "assignment":
            self._push(RemoveAssignment(self.key), False)

    def _add_assignment(self) -> None:
        track_id = self.assign_track.currentData()
        if self.kind != "person" or not track_id:
            return
        a = Assignment(new_id("assign"), track_id, self.key, self.assign_start.value(), self.assign_end.value())
        self._push(AddAssignment(a), False)
