"""Errors the engine raises for the user to read, and the CLI's exit codes.

Every error that reaches a user names the file and the problem, and where possible what to do.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_CANCELLED = 130


class LipdubError(Exception):
    """Base class of the errors meant for users: a message, the file concerned, and a hint."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.hint = hint
        super().__init__(self.user_text())

    def user_text(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class BadInputError(LipdubError):
    """The input (a file, a project, an argument) cannot be used as given."""

    exit_code = EXIT_BAD_INPUT


class MediaError(BadInputError):
    """A media file is missing, unreadable, of an unsupported kind, or broken."""


class ProjectError(BadInputError):
    """A project document is broken, from a newer version, or points at missing media."""


class OutputError(LipdubError):
    """An output cannot be written (read-only folder, full disk...)."""


class Cancelled(Exception):
    """The user cancelled a long operation. Not an error: nothing was written."""

    exit_code = EXIT_CANCELLED
