"""The open project as the GUI sees it: the engine's Project + CommandStack, a file path, autosave.

Every edit goes through :meth:`Document.push` (an engine command); views listen to ``changed`` and
re-read the project. Autosave writes a snapshot a few seconds after each edit to
``data_dir("autosave")`` in a worker; a session marker written at start and removed on a clean exit
tells the next start that the last session ended badly, so it can offer the autosave back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.project.commands import Command, CommandStack
from engine.project.model import Project
from engine.project.store import PROJECT_SUFFIX, load_project, save_project
from engine.runtime.paths import data_dir

log = logging.getLogger(__name__)

AUTOSAVE_DELAY_MS = 3000
AUTOSAVE_NAME = "autosave" + PROJECT_SUFFIX
SESSION_MARKER = "session.json"


def autosave_dir() -> Path:
    return data_dir("autosave")


def autosave_path() -> Path:
    return autosave_dir() / AUTOSAVE_NAME


class Document(QObject):
    """One open project. Signals: ``changed`` (content), ``state_changed`` (path / modified / undo)."""

    changed = Signal()
    state_changed = Signal()
    project_replaced = Signal()
    autosaved = Signal(str)

    def __init__(self, pool: object | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self.project = Project()
        self.stack = CommandStack(self.project)
        self.stack.add_listener(self._on_stack)
        self.path: Path | None = None
        self._restored_unsaved = False
        self._autosaved_revision = self.stack.revision
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_enabled = True
        self.last_autosave: float | None = None

    # --- edits --------------------------------------------------------------------------------
    def push(self, command: Command, merge: bool = True) -> None:
        """Apply an engine command (raises the engine's InvalidEdit when the edit is not allowed)."""
        self.stack.push(command, merge=merge)

    def end_merge(self) -> None:
        self.stack.end_merge()

    def undo(self) -> None:
        self.stack.undo()

    def redo(self) -> None:
        self.stack.redo()

    def _on_stack(self, _stack: CommandStack) -> None:
        self.changed.emit()
        self.state_changed.emit()
        if self.autosave_enabled and self.stack.revision != self._autosaved_revision:
            self._autosave_timer.start()

    # --- state --------------------------------------------------------------------------------
    @property
    def modified(self) -> bool:
        return self.stack.is_modified or self._restored_unsaved

    @property
    def title(self) -> str:
        name = self.path.name.removesuffix(PROJECT_SUFFIX) if self.path else "Untitled"
        return name + (" •" if self.modified else "")

    # --- files --------------------------------------------------------------------------------
    def replace(self, project: Project, path: Path | None, modified: bool = False) -> None:
        self.project = project
        self.path = path
        self.stack.reset(project)
        self._restored_unsaved = modified  # restored from an autosave: not saved anywhere yet
        self._autosaved_revision = self.stack.revision
        self.project_replaced.emit()
        self.changed.emit()
        self.state_changed.emit()
        self.write_session_marker()

    def new(self) -> None:
        self.replace(Project(), None)

    def open(self, path: str | Path) -> None:
        """Load a project file (raises ProjectError with the file and the problem)."""
        path = Path(path).absolute()
        self.replace(load_project(path), path)

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path).absolute() if path is not None else self.path
        if target is None:
            raise ValueError("no path to save to")
        if not target.name.endswith(PROJECT_SUFFIX):
            target = target.with_name(target.name + PROJECT_SUFFIX)
        save_project(self.project, target)
        self.path = target
        self._restored_unsaved = False
        self.stack.mark_clean()
        self.write_session_marker()
        self.state_changed.emit()
        return target

    # --- autosave -----------------------------------------------------------------------------
    @property
    def autosave_pending(self) -> bool:
        """True while the newest edit is not in the autosave file yet."""
        return self.stack.revision != self._autosaved_revision

    def autosave_now(self) -> None:
        """Save a snapshot to the autosave file, in a worker when a pool is available."""
        revision = self.stack.revision
        snapshot = self.stack.snapshot()
        target = autosave_path()

        def write(progress: object = None, cancel: object = None) -> str:
            save_project(snapshot, target)
            return str(target)

        def done(path: str, revision: int = revision) -> None:
            self._autosaved_revision = revision
            self.last_autosave = time.time()
            self.write_session_marker()
            self.autosaved.emit(path)

        def failed(exc: BaseException) -> None:
            log.warning("autosave failed: %s", exc)

        start = getattr(self._pool, "start", None)
        if start is not None:
            start(write, "autosave", on_result=done, on_error=failed)
        else:
            try:
                done(write())
            except Exception as exc:
                failed(exc)

    def flush_autosave(self) -> None:
        """Write a pending autosave now, synchronously (before a test checks it, or on shutdown)."""
        if self._autosave_timer.isActive():
            self._autosave_timer.stop()
        save_project(self.stack.snapshot(), autosave_path())
        self._autosaved_revision = self.stack.revision
        self.write_session_marker()

    def write_session_marker(self) -> None:
        marker = autosave_dir() / SESSION_MARKER
        info = {
            "pid": os.getpid(),
            "started": time.time(),
            "project_path": str(self.path) if self.path else None,
            "autosave": str(autosave_path()) if autosave_path().is_file() else None,
        }
        try:
            marker.write_text(json.dumps(info), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write the session marker %s: %s", marker, exc)

    def close_cleanly(self) -> None:
        """The session ended normally: nothing to restore next time."""
        self._autosave_timer.stop()
        for name in (SESSION_MARKER, AUTOSAVE_NAME):
            try:
                (autosave_dir() / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", name, exc)


def unclean_session() -> dict[str, object] | None:
    """What the last session left when it did not close cleanly and an autosave exists, else None."""
    marker = autosave_dir() / SESSION_MARKER
    if not marker.is_file() or not autosave_path().is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    info["autosave"] = str(autosave_path())
    return info


def discard_autosave() -> None:
    for name in (SESSION_MARKER, AUTOSAVE_NAME):
        try:
            (autosave_dir() / name).unlink()
        except OSError:
            pass
