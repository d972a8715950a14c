"""Undoable edits of a :class:`Project`: commands with do/undo, and a stack that the GUI only observes.

Every change a user makes goes through :meth:`CommandStack.push`; the app shows ``undo_label`` /
``redo_label`` and enables its menu items from ``can_undo`` / ``can_redo``, and re-reads the project
when a listener is called. Consecutive edits of the same kind on the same object (dragging an offset,
spinning a gain) merge into one undo step until :meth:`CommandStack.end_merge` is called (mouse
release) or another kind of edit comes in.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

from engine.errors import BadInputError
from engine.project.model import (
    AUDIO_MODES,
    DEVICES,
    LANGUAGE_MODES,
    PRESETS,
    RENDER_ENGINES,
    Assignment,
    DubTrack,
    FaceIdentity,
    Project,
    RenderSettings,
    Video,
    is_finite_number,
    is_language_tag,
)

log = logging.getLogger(__name__)


class InvalidEdit(BadInputError):
    """An edit that would make the project inconsistent (unknown id, end before start, bad value)."""


def _number(value: Any, what: str) -> float:
    if not is_finite_number(value):
        raise InvalidEdit(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _track(project: Project, track_id: str) -> DubTrack:
    try:
        return project.track(track_id)
    except KeyError as exc:
        raise InvalidEdit(str(exc.args[0])) from None


def _identity(project: Project, identity_id: str) -> FaceIdentity:
    try:
        return project.identity(identity_id)
    except KeyError as exc:
        raise InvalidEdit(str(exc.args[0])) from None


def _assignment(project: Project, assignment_id: str) -> Assignment:
    try:
        return project.assignment(assignment_id)
    except KeyError as exc:
        raise InvalidEdit(str(exc.args[0])) from None


class Command:
    """One undoable edit. ``do`` applies it (also when redoing), ``undo`` reverts exactly that.

    ``do`` must validate before changing anything: a command that raises leaves the project as it was.
    """

    label: str = "Edit"

    def do(self, project: Project) -> None:
        raise NotImplementedError

    def undo(self, project: Project) -> None:
        raise NotImplementedError

    def merge_key(self) -> tuple[Any, ...] | None:
        """Commands with equal, non-None keys that follow each other merge into one undo step."""
        return None

    def merge(self, later: Command) -> None:
        """Absorb ``later`` (already applied to the project) so that undoing self reverts both."""
        raise NotImplementedError

    def is_noop(self) -> bool:
        """True when applying the command changed nothing (such commands are not kept)."""
        return False


class MacroCommand(Command):
    """Several commands as one undo step (undone in reverse order)."""

    def __init__(self, label: str, commands: list[Command]) -> None:
        self.label = label
        self.commands = list(commands)

    def do(self, project: Project) -> None:
        done: list[Command] = []
        try:
            for cmd in self.commands:
                cmd.do(project)
                done.append(cmd)
        except Exception:
            for cmd in reversed(done):
                cmd.undo(project)
            raise

    def undo(self, project: Project) -> None:
        for cmd in reversed(self.commands):
            cmd.undo(project)

    def is_noop(self) -> bool:
        return all(cmd.is_noop() for cmd in self.commands)


# --- video -------------------------------------------------------------------------------------


class SetVideo(Command):
    """Replace (or with ``None`` remove) the project's video."""

    def __init__(self, video: Video | None) -> None:
        self.new = video
        self.old: Video | None = None
        self.label = "Set video" if video is not None else "Remove video"

    def do(self, project: Project) -> None:
        self.old = project.video
        project.video = self.new

    def undo(self, project: Project) -> None:
        project.video = self.old

    def is_noop(self) -> bool:
        return self.old == self.new


# --- dub tracks --------------------------------------------------------------------------------


def _check_track(track: DubTrack) -> None:
    _number(track.offset_s, "the offset")
    _number(track.gain_db, "the gain")
    trim_in = _number(track.trim_in_s, "the trim start")
    if trim_in < 0:
        raise InvalidEdit(f"the trim start cannot be negative ({trim_in})")
    if track.trim_out_s is not None and _number(track.trim_out_s, "the trim end") <= trim_in:
        raise InvalidEdit(f"the trim end ({track.trim_out_s}) must be after the trim start ({trim_in})")
    if not is_language_tag(track.language):
        raise InvalidEdit(f"{track.language!r} is not a language tag such as 'de', 'pt-BR' or 'und'")


class AddTrack(Command):
    def __init__(self, track: DubTrack, index: int | None = None) -> None:
        self.track = track
        self.index = index
        self.label = f"Add track {track.display_name}"

    def do(self, project: Project) -> None:
        if any(t.id == self.track.id for t in project.tracks):
            raise InvalidEdit(f"a dub track with id {self.track.id!r} already exists")
        _check_track(self.track)
        index = len(project.tracks) if self.index is None else self.index
        project.tracks.insert(index, self.track)

    def undo(self, project: Project) -> None:
        project.tracks.remove(self.track)


class RemoveTrack(Command):
    """Remove a dub track and the assignments that use it (all restored on undo)."""

    def __init__(self, track_id: str) -> None:
        self.track_id = track_id
        self.label = "Remove track"
        self._track: DubTrack | None = None
        self._index = -1
        self._assignments: list[tuple[int, Assignment]] = []

    def do(self, project: Project) -> None:
        track = _track(project, self.track_id)
        self.label = f"Remove track {track.display_name}"
        self._track, self._index = track, project.tracks.index(track)
        self._assignments = [(i, a) for i, a in enumerate(project.assignments) if a.track_id == self.track_id]
        project.tracks.remove(track)
        project.assignments[:] = [a for a in project.assignments if a.track_id != self.track_id]

    def undo(self, project: Project) -> None:
        assert self._track is not None
        project.tracks.insert(self._index, self._track)
        for i, a in self._assignments:
            project.assignments.insert(i, a)


class _SetTrackFields(Command):
    """Base of the track property edits: set some fields of one track, remember the old values."""

    kind = "track"

    def __init__(self, track_id: str, label: str, **values: Any) -> None:
        self.track_id = track_id
        self.label = label
        self.new = values
        self.old: dict[str, Any] = {}

    def do(self, project: Project) -> None:
        track = _track(project, self.track_id)
        candidate = dataclasses.replace(track, **self.new)
        _check_track(candidate)
        self.old = {k: getattr(track, k) for k in self.new}
        for k, v in self.new.items():
            setattr(track, k, v)

    def undo(self, project: Project) -> None:
        track = _track(project, self.track_id)
        for k, v in self.old.items():
            setattr(track, k, v)

    def merge_key(self) -> tuple[Any, ...] | None:
        return (type(self), self.track_id)

    def merge(self, later: Command) -> None:
        assert isinstance(later, _SetTrackFields)
        self.new = dict(later.new)

    def is_noop(self) -> bool:
        return self.old == self.new


class SetTrackOffset(_SetTrackFields):
    def __init__(self, track_id: str, offset_s: float) -> None:
        super().__init__(track_id, "Move track", offset_s=offset_s)


class SetTrackGain(_SetTrackFields):
    def __init__(self, track_id: str, gain_db: float) -> None:
        super().__init__(track_id, "Change track gain", gain_db=gain_db)


class SetTrackTrim(_SetTrackFields):
    def __init__(self, track_id: str, trim_in_s: float, trim_out_s: float | None) -> None:
        super().__init__(track_id, "Trim track", trim_in_s=trim_in_s, trim_out_s=trim_out_s)


class SetTrackLanguage(_SetTrackFields):
    def __init__(self, track_id: str, language: str) -> None:
        super().__init__(track_id, "Change track language", language=language)

    def merge_key(self) -> tuple[Any, ...] | None:
        return None


class SetTrackName(_SetTrackFields):
    def __init__(self, track_id: str, name: str) -> None:
        super().__init__(track_id, "Rename track", name=name)


class SetTrackPath(_SetTrackFields):
    """Point a track at another file (the user replaced or relinked it)."""

    def __init__(self, track_id: str, path: Any) -> None:
        super().__init__(track_id, "Replace track file", path=path)

    def merge_key(self) -> tuple[Any, ...] | None:
        return None


# --- identities --------------------------------------------------------------------------------


class AddIdentity(Command):
    def __init__(self, identity: FaceIdentity, index: int | None = None) -> None:
        self.identity = identity
        self.index = index
        self.label = f"Add person {identity.name or identity.id}"

    def do(self, project: Project) -> None:
        if any(f.id == self.identity.id for f in project.identities):
            raise InvalidEdit(f"a face identity with id {self.identity.id!r} already exists")
        index = len(project.identities) if self.index is None else self.index
        project.identities.insert(index, self.identity)

    def undo(self, project: Project) -> None:
        project.identities.remove(self.identity)


class RemoveIdentity(Command):
    """Remove a face identity and the assignments that use it (all restored on undo)."""

    def __init__(self, identity_id: str) -> None:
        self.identity_id = identity_id
        self.label = "Remove person"
        self._identity: FaceIdentity | None = None
        self._index = -1
        self._assignments: list[tuple[int, Assignment]] = []

    def do(self, project: Project) -> None:
        ident = _identity(project, self.identity_id)
        self._identity, self._index = ident, project.identities.index(ident)
        self._assignments = [
            (i, a) for i, a in enumerate(project.assignments) if a.identity_id == self.identity_id
        ]
        project.identities.remove(ident)
        project.assignments[:] = [a for a in project.assignments if a.identity_id != self.identity_id]

    def undo(self, project: Project) -> None:
        assert self._identity is not None
        project.identities.insert(self._index, self._identity)
        for i, a in self._assignments:
            project.assignments.insert(i, a)


class RenameIdentity(Command):
    def __init__(self, identity_id: str, name: str) -> None:
        self.identity_id = identity_id
        self.new = name
        self.old = ""
        self.label = "Rename person"

    def do(self, project: Project) -> None:
        ident = _identity(project, self.identity_id)
        self.old = ident.name
        ident.name = self.new

    def undo(self, project: Project) -> None:
        _identity(project, self.identity_id).name = self.old

    def merge_key(self) -> tuple[Any, ...] | None:
        return (RenameIdentity, self.identity_id)

    def merge(self, later: Command) -> None:
        assert isinstance(later, RenameIdentity)
        self.new = later.new

    def is_noop(self) -> bool:
        return self.old == self.new


# --- assignments -------------------------------------------------------------------------------


def _check_assignment(project: Project, a: Assignment) -> None:
    _track(project, a.track_id)
    _identity(project, a.identity_id)
    start, end = _number(a.start_s, "the start"), _number(a.end_s, "the end")
    if start < 0:
        raise InvalidEdit(f"an assignment cannot start before the video ({start} s)")
    if not end > start:
        raise InvalidEdit(f"an assignment must end after it starts ({start} s to {end} s)")


class AddAssignment(Command):
    def __init__(self, assignment: Assignment, index: int | None = None) -> None:
        self.assignment = assignment
        self.index = index
        self.label = "Assign track"

    def do(self, project: Project) -> None:
        if any(a.id == self.assignment.id for a in project.assignments):
            raise InvalidEdit(f"an assignment with id {self.assignment.id!r} already exists")
        _check_assignment(project, self.assignment)
        index = len(project.assignments) if self.index is None else self.index
        project.assignments.insert(index, self.assignment)

    def undo(self, project: Project) -> None:
        project.assignments.remove(self.assignment)


class RemoveAssignment(Command):
    def __init__(self, assignment_id: str) -> None:
        self.assignment_id = assignment_id
        self.label = "Remove assignment"
        self._assignment: Assignment | None = None
        self._index = -1

    def do(self, project: Project) -> None:
        a = _assignment(project, self.assignment_id)
        self._assignment, self._index = a, project.assignments.index(a)
        project.assignments.remove(a)

    def undo(self, project: Project) -> None:
        assert self._assignment is not None
        project.assignments.insert(self._index, self._assignment)


class EditAssignment(Command):
    """Change an assignment's range, track or person; dragging an edge merges into one step."""

    def __init__(
        self,
        assignment_id: str,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        track_id: str | None = None,
        identity_id: str | None = None,
    ) -> None:
        self.assignment_id = assignment_id
        given = {"start_s": start_s, "end_s": end_s, "track_id": track_id, "identity_id": identity_id}
        self.new: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if not self.new:
            raise InvalidEdit("an assignment edit must change something")
        self.old: dict[str, Any] = {}
        self.label = "Change assignment" if set(self.new) - {"start_s", "end_s"} else "Move assignment"

    def do(self, project: Project) -> None:
        a = _assignment(project, self.assignment_id)
        _check_assignment(project, dataclasses.replace(a, **self.new))
        self.old = {k: getattr(a, k) for k in self.new}
        for k, v in self.new.items():
            setattr(a, k, v)

    def undo(self, project: Project) -> None:
        a = _assignment(project, self.assignment_id)
        for k, v in self.old.items():
            setattr(a, k, v)

    def merge_key(self) -> tuple[Any, ...] | None:
        return (EditAssignment, self.assignment_id, tuple(sorted(self.new)))

    def merge(self, later: Command) -> None:
        assert isinstance(later, EditAssignment)
        self.new = dict(later.new)

    def is_noop(self) -> bool:
        return self.old == self.new


# --- render settings ---------------------------------------------------------------------------

_RENDER_CHOICES: dict[str, tuple[str, ...]] = {
    "engine": RENDER_ENGINES,
    "audio_mode": AUDIO_MODES,
    "language_mode": LANGUAGE_MODES,
    "device": DEVICES,
    "preset": PRESETS,
}


def _check_render(settings: RenderSettings) -> None:
    for name, allowed in _RENDER_CHOICES.items():
        value = getattr(settings, name)
        if value not in allowed:
            raise InvalidEdit(f"{name} {value!r} is not one of {', '.join(allowed)}")
    if not isinstance(settings.crf, int) or isinstance(settings.crf, bool) or not 0 <= settings.crf <= 51:
        raise InvalidEdit(f"the CRF must be a whole number from 0 to 51, not {settings.crf!r}")
    if not isinstance(settings.audio_bitrate_kbps, int) or settings.audio_bitrate_kbps <= 0:
        raise InvalidEdit(f"the audio bitrate must be a positive whole number, not {settings.audio_bitrate_kbps!r}")
    if not settings.codec:
        raise InvalidEdit("the video codec cannot be empty")
    if not math.isfinite(_number(settings.duck_db, "the ducking level")):
        raise InvalidEdit("the ducking level must be finite")


class ChangeRenderSettings(Command):
    """Change some render settings, e.g. ``ChangeRenderSettings(crf=20, preset="fast")``."""

    def __init__(self, **changes: Any) -> None:
        fields = {f.name for f in dataclasses.fields(RenderSettings)}
        unknown = set(changes) - fields
        if unknown:
            raise InvalidEdit(f"unknown render setting(s): {', '.join(sorted(unknown))}")
        if not changes:
            raise InvalidEdit("a render settings change must change something")
        self.new = changes
        self.old: dict[str, Any] = {}
        self.label = "Change render settings"

    def do(self, project: Project) -> None:
        _check_render(dataclasses.replace(project.render, **self.new))
        self.old = {k: getattr(project.render, k) for k in self.new}
        for k, v in self.new.items():
            setattr(project.render, k, v)

    def undo(self, project: Project) -> None:
        for k, v in self.old.items():
            setattr(project.render, k, v)

    def merge_key(self) -> tuple[Any, ...] | None:
        return (ChangeRenderSettings, tuple(sorted(self.new)))

    def merge(self, later: Command) -> None:
        assert isinstance(later, ChangeRenderSettings)
        self.new = dict(later.new)

    def is_noop(self) -> bool:
        return self.old == self.new


# --- the stack ---------------------------------------------------------------------------------

Listener = Callable[["CommandStack"], None]


class CommandStack:
    """The undo history of one project.

    State is read through properties (``can_undo``, ``can_redo``, ``undo_label``, ``redo_label``,
    ``is_modified``, ``revision``); changes go through methods (``push``, ``undo``, ``redo``,
    ``mark_clean``, ``end_merge``, ``reset``). Listeners are called with the stack after every change.
    ``revision`` increases with every change of the document (for autosave: save when it differs from
    the revision last autosaved).
    """

    def __init__(self, project: Project, limit: int = 1000) -> None:
        self.project = project
        self.limit = limit
        self._commands: list[Command] = []
        self._index = 0  # number of applied commands
        self._clean: int | None = 0  # value of _index at the last save; None: unreachable
        self._merge_open = False
        self.revision = 0
        self.listeners: list[Listener] = []

    # state
    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_label(self) -> str:
        return self._commands[self._index - 1].label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._commands[self._index].label if self.can_redo else ""

    @property
    def is_modified(self) -> bool:
        return self._index != self._clean

    @property
    def undo_count(self) -> int:
        return self._index

    def labels(self) -> list[str]:
        """Every step's label, oldest first (for a history panel); the first ``undo_count`` are done."""
        return [c.label for c in self._commands]

    # changes
    def push(self, command: Command, merge: bool = True) -> None:
        """Apply ``command`` and record it. A command that changes nothing is dropped; one of the same
        kind and target as the last step merges into it (unless ``merge`` is False, the merge chain
        was ended, or the last step is the saved state)."""
        command.do(self.project)
        if command.is_noop():
            return
        del self._commands[self._index :]
        if self._clean is not None and self._clean > self._index:
            self._clean = None
        top = self._commands[-1] if self._commands else None
        key = command.merge_key()
        if (
            merge
            and self._merge_open
            and top is not None
            and key is not None
            and top.merge_key() == key
            and self._clean != self._index
        ):
            top.merge(command)
            if top.is_noop():  # dragged back to where it started: the step disappears
                self._commands.pop()
                self._index -= 1
                self._merge_open = False
        else:
            self._commands.append(command)
            self._index += 1
            self._merge_open = True
            if len(self._commands) > self.limit:
                drop = len(self._commands) - self.limit
                del self._commands[:drop]
                self._index -= drop
                if self._clean is not None:
                    self._clean = self._clean - drop if self._clean >= drop else None
        self._changed()

    def undo(self) -> None:
        if not self.can_undo:
            return
        self._commands[self._index - 1].undo(self.project)
        self._index -= 1
        self._merge_open = False
        self._changed()

    def redo(self) -> None:
        if not self.can_redo:
            return
        self._commands[self._index].do(self.project)
        self._index += 1
        self._merge_open = False
        self._changed()

    def end_merge(self) -> None:
        """The next push starts a new undo step (call it when a drag or a text edit ends)."""
        self._merge_open = False

    def mark_clean(self) -> None:
        """The document as it is now has been saved."""
        self._clean = self._index
        self._merge_open = False
        self._notify()

    def reset(self, project: Project | None = None) -> None:
        """Forget the history (a project was opened or created); the document counts as saved."""
        if project is not None:
            self.project = project
        self._commands.clear()
        self._index = 0
        self._clean = 0
        self._merge_open = False
        self.revision += 1
        self._notify()

    def snapshot(self) -> Project:
        """A deep copy of the project, e.g. for a background export that must not see later edits."""
        return copy.deepcopy(self.project)

    # listeners
    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self.listeners:
            self.listeners.remove(fn)

    def _changed(self) -> None:
        self.revision += 1
        self._notify()

    def _notify(self) -> None:
        for fn in list(self.listeners):
            try:
                fn(self)
            except Exception:  # a broken view must not break editing
                log.exception("command stack listener failed")
