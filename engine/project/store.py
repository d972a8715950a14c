"""Project files: JSON with a schema version, atomic save, validating load, missing media and relink.

File layout (``schema_version`` 1)::

    {
      "format": "lipdub-studio-project",
      "schema_version": 1,
      "saved_by": "lipdub-studio 0.1.0",
      "video": {"path": "clips/interview.mp4", "abs_path": "/home/ann/dub/clips/interview.mp4",
                "content_hash": "...", "probe": {...}} | null,
      "tracks": [{"id", "path", "abs_path", "language", "offset_s", "gain_db", "trim_in_s",
                  "trim_out_s", "name"}],
      "identities": [{"id", "name"}],
      "assignments": [{"id", "track_id", "identity_id", "start_s", "end_s"}],
      "render": {"engine", "codec", "preset", "crf", "audio_mode", "duck_db", "audio_bitrate_kbps",
                 "language_mode", "device"},
      "ui": {...}
    }

``path`` is relative to the project file's folder where that is possible (so a project folder can be
moved or copied as a whole), absolute otherwise; ``abs_path`` records where the file was when the
project was saved, so a project file moved on its own still finds its media. Missing media does not
stop a load: :func:`missing_media` lists it and :func:`relink` points the project at the new place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from engine import __version__
from engine.errors import OutputError, ProjectError
from engine.project.model import (
    AUDIO_MODES,
    DEVICES,
    LANGUAGE_MODES,
    PRESETS,
    RENDER_ENGINES,
    SCHEMA_VERSION,
    Assignment,
    DubTrack,
    FaceIdentity,
    Project,
    RenderSettings,
    Video,
    is_finite_number,
    is_language_tag,
)

FORMAT_NAME = "lipdub-studio-project"
PROJECT_SUFFIX = ".lipdub.json"
TEMP_MARK = ".tmp-lipdub"
"""Temporary files are named ``.<target name>.<random>.tmp-lipdub`` beside their target."""

# Upgrades of older documents, applied in order: MIGRATIONS[n] turns a version-n dict into version n+1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


# ------------------------------------------------------------------------------------------------
# Saving
# ------------------------------------------------------------------------------------------------


def save_project(project: Project, path: str | Path) -> None:
    """Write ``project`` to ``path`` atomically: a temporary file in the same folder, flushed to disk,
    then renamed over the target. A failure at any point leaves an earlier file at ``path`` untouched
    and no temporary file behind; it raises :class:`OutputError` saying why (full disk, read-only...)."""
    path = Path(path).absolute()
    text = json.dumps(project_to_dict(project, path.parent), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def project_to_dict(project: Project, base_dir: Path) -> dict[str, Any]:
    """The JSON document of ``project``, with media paths relative to ``base_dir`` where possible."""
    video = None
    if project.video is not None:
        v = project.video
        video = {
            **_path_fields(v.path, base_dir),
            "content_hash": v.content_hash,
            "probe": v.probe,
        }
    r = project.render
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "saved_by": f"lipdub-studio {__version__}",
        "video": video,
        "tracks": [
            {
                "id": t.id,
                **_path_fields(t.path, base_dir),
                "language": t.language,
                "offset_s": float(t.offset_s),
                "gain_db": float(t.gain_db),
                "trim_in_s": float(t.trim_in_s),
                "trim_out_s": None if t.trim_out_s is None else float(t.trim_out_s),
                "name": t.name,
            }
            for t in project.tracks
        ],
        "identities": [{"id": i.id, "name": i.name} for i in project.identities],
        "assignments": [
            {
                "id": a.id,
                "track_id": a.track_id,
                "identity_id": a.identity_id,
                "start_s": float(a.start_s),
                "end_s": float(a.end_s),
            }
            for a in project.assignments
        ],
        "render": {
            "engine": r.engine,
            "codec": r.codec,
            "preset": r.preset,
            "crf": int(r.crf),
            "audio_mode": r.audio_mode,
            "duck_db": float(r.duck_db),
            "audio_bitrate_kbps": int(r.audio_bitrate_kbps),
            "language_mode": r.language_mode,
            "device": r.device,
        },
        "ui": project.ui,
    }


def _path_fields(path: Path, base_dir: Path) -> dict[str, str]:
    absolute = Path(os.path.abspath(path))
    try:
        stored = PurePath(os.path.relpath(absolute, base_dir)).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        stored = str(absolute)
    return {"path": stored, "abs_path": str(absolute)}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, fsync'd, then ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_MARK}")
    fd = -1
    try:
        # 0o666 minus the umask, as for any new file; an existing file's permission bits are kept below.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot save: {describe_os_error(exc)}", path=path) from exc
    except BaseException:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); Windows has no directory fsync and needs none."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def describe_os_error(exc: OSError) -> str:
    """A sentence for a user about why a file could not be written or read."""
    code = exc.errno
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        return "the disk is full (free some space and try again)"
    if code in (errno.EROFS,):
        return "the folder is on a read-only disk"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied: the folder is read-only or belongs to another user"
    if code == errno.ENOENT:
        return "the folder does not exist"
    if code == errno.ENAMETOOLONG:
        return "the file name is too long"
    return exc.strerror or str(exc)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def load_project(path: str | Path) -> Project:
    """Read and validate a project file. Raises :class:`ProjectError` naming the file and what is
    wrong: unreadable, not JSON (with line and column), not a project, from a newer version, or a
    field that is missing or of the wrong kind (named like ``tracks[2].offset_s``).

    Media that no longer exists does not stop the load; see :func:`missing_media`."""
    path = Path(path).absolute()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError("no such project file", path=path) from None
    except IsADirectoryError:
        raise ProjectError("is a folder, not a project file", path=path) from None
    except OSError as exc:
        raise ProjectError(f"cannot read the project file: {describe_os_error(exc)}", path=path) from exc
    if not raw.strip():
        raise ProjectError("the project file is empty", path=path, hint="it may have been cut short")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProjectError(
            f"is not a project file (not UTF-8 text: bad byte at offset {exc.start})", path=path
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"the project file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            path=path,
            hint="the file is damaged; an autosave or backup copy may still be good",
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise ProjectError(f"the project file is not valid JSON: {exc}", path=path) from None
    return project_from_dict(data, path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def project_from_dict(data: Any, path: Path) -> Project:
    """Validate a decoded JSON document and build the :class:`Project`; ``path`` is the project file
    (for messages and to resolve relative media paths)."""
    if not isinstance(data, dict):
        raise ProjectError(f"is not a Lipdub Studio project (the JSON is {_kind(data)}, not an object)", path=path)
    fmt = data.get("format")
    if fmt is not None and fmt != FORMAT_NAME:
        raise ProjectError(f"is not a Lipdub Studio project (its format is {fmt!r})", path=path)
    if "schema_version" not in data:
        raise ProjectError(
            "is not a Lipdub Studio project (it has no 'schema_version' field)",
            path=path,
        )
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectError(f"the field 'schema_version' should be a whole number >= 1, not {version!r}", path=path)
    if version > SCHEMA_VERSION:
        made_by = data.get("saved_by")
        by = f" ({made_by})" if isinstance(made_by, str) else ""
        raise ProjectError(
            f"was made by a newer Lipdub Studio{by}, project format version {version}; "
            f"this one reads up to version {SCHEMA_VERSION}",
            path=path,
            hint="update Lipdub Studio to open it",
        )
    while version < SCHEMA_VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise ProjectError(f"project format version {version} cannot be upgraded", path=path)
        data = migrate(data)
        version += 1

    base = path.parent
    doc = _Obj(data, "", path)
    video = None
    vdata = doc.opt("video", "object", None)
    if vdata is not None:
        v = _Obj(vdata, "video", path)
        probe = v.opt("probe", "object", None)
        video = Video(
            path=_media_path(v, base),
            content_hash=v.opt("content_hash", "string", None),
            probe=probe,
        )
    tracks = []
    for i, item in enumerate(doc.opt("tracks", "list", [])):
        t = _Obj(item, f"tracks[{i}]", path)
        language = t.opt("language", "string", "und")
        if not is_language_tag(language):
            t.fail("language", f"is {language!r}, not a language tag such as 'de', 'pt-BR' or 'und'")
        trim_in = t.opt("trim_in_s", "number", 0.0)
        trim_out = t.opt("trim_out_s", "number", None)
        if trim_in < 0:
            t.fail("trim_in_s", f"is {trim_in}; it cannot be negative")
        if trim_out is not None and trim_out <= trim_in:
            t.fail("trim_out_s", f"is {trim_out}; it must be after trim_in_s ({trim_in})")
        tracks.append(
            DubTrack(
                id=t.req("id", "string"),
                path=_media_path(t, base),
                language=language,
                offset_s=t.opt("offset_s", "number", 0.0),
                gain_db=t.opt("gain_db", "number", 0.0),
                trim_in_s=trim_in,
                trim_out_s=trim_out,
                name=t.opt("name", "string", ""),
            )
        )
    identities = []
    for i, item in enumerate(doc.opt("identities", "list", [])):
        f = _Obj(item, f"identities[{i}]", path)
        identities.append(FaceIdentity(id=f.req("id", "string"), name=f.opt("name", "string", "")))
    assignments = []
    for i, item in enumerate(doc.opt("assignments", "list", [])):
        a = _Obj(item, f"assignments[{i}]", path)
        start, end = a.req("start_s", "number"), a.req("end_s", "number")
        if start < 0:
            a.fail("start_s", f"is {start}; it cannot be negative")
        if end <= start:
            a.fail("end_s", f"is {end}; it must be after start_s ({start})")
        assignments.append(
            Assignment(
                id=a.req("id", "string"),
                track_id=a.req("track_id", "string"),
                identity_id=a.req("identity_id", "string"),
                start_s=start,
                end_s=end,
            )
        )
    render = RenderSettings()
    rdata = doc.opt("render", "object", None)
    if rdata is not None:
        r = _Obj(rdata, "render", path)
        render = RenderSettings(
            engine=r.choice("engine", RENDER_ENGINES, render.engine),  # type: ignore[arg-type]
            codec=r.opt("codec", "string", render.codec),
            preset=r.choice("preset", PRESETS, render.preset),
            crf=r.opt("crf", "integer", render.crf),
            audio_mode=r.choice("audio_mode", AUDIO_MODES, render.audio_mode),  # type: ignore[arg-type]
            duck_db=r.opt("duck_db", "number", render.duck_db),
            audio_bitrate_kbps=r.opt("audio_bitrate_kbps", "integer", render.audio_bitrate_kbps),
            language_mode=r.choice("language_mode", LANGUAGE_MODES, render.language_mode),  # type: ignore[arg-type]
            device=r.choice("device", DEVICES, render.device),  # type: ignore[arg-type]
        )
        if not 0 <= render.crf <= 51:
            r.fail("crf", f"is {render.crf}; it must be between 0 and 51")
        if render.audio_bitrate_kbps <= 0:
            r.fail("audio_bitrate_kbps", f"is {render.audio_bitrate_kbps}; it must be positive")
    ui = doc.opt("ui", "object", {})

    project = Project(
        schema_version=SCHEMA_VERSION,
        video=video,
        tracks=tracks,
        identities=identities,
        assignments=assignments,
        render=render,
        ui=ui,
    )
    _check_references(project, path)
    return project


def _check_references(project: Project, path: Path) -> None:
    id_lists: list[tuple[str, list[str]]] = [
        ("tracks", [t.id for t in project.tracks]),
        ("identities", [f.id for f in project.identities]),
        ("assignments", [a.id for a in project.assignments]),
    ]
    for name, ids in id_lists:
        seen: set[str] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen:
                raise ProjectError(f"the field '{name}[{i}].id' repeats the id {item_id!r}", path=path)
            seen.add(item_id)
    track_ids = {t.id for t in project.tracks}
    identity_ids = {f.id for f in project.identities}
    for i, a in enumerate(project.assignments):
        if a.track_id not in track_ids:
            raise ProjectError(f"the field 'assignments[{i}].track_id' names no dub track ({a.track_id!r})", path=path)
        if a.identity_id not in identity_ids:
            raise ProjectError(
                f"the field 'assignments[{i}].identity_id' names no face identity ({a.identity_id!r})", path=path
            )


def _media_path(obj: _Obj, base: Path) -> Path:
    """Resolve a stored media path: relative to the project folder first, then where it was saved."""
    stored = obj.req("path", "string")
    if not stored:
        obj.fail("path", "is empty")
    abs_hint = obj.opt("abs_path", "string", None)
    candidate = Path(stored)
    if candidate.is_absolute():
        return candidate
    relative = Path(os.path.normpath(base / candidate))
    if relative.exists():
        return relative
    if abs_hint and Path(abs_hint).is_absolute() and Path(abs_hint).exists():
        return Path(abs_hint)
    # Missing either way: report where it was when the project was saved, which the user recognises.
    if abs_hint and Path(abs_hint).is_absolute():
        return Path(abs_hint)
    return relative


_KIND_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "bool": "true or false",
    "object": "an object",
    "list": "a list",
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Obj:
    """Typed access to one JSON object, failing with the dotted name of the offending field."""

    def __init__(self, data: Any, where: str, path: Path) -> None:
        self.where = where
        self.path = path
        if not isinstance(data, dict):
            raise ProjectError(f"the field '{where}' should be an object, not {_kind(data)}", path=path)
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> None:
        raise ProjectError(f"the field '{self.name(key)}' {problem}", path=self.path)

    def req(self, key: str, kind: str) -> Any:
        if key not in self.data:
            raise ProjectError(f"the field '{self.name(key)}' is missing", path=self.path)
        value = self.data[key]
        if value is None:
            self.fail(key, f"is null; it should be {_KIND_NAMES[kind]}")
        return self._check(key, value, kind)

    def opt(self, key: str, kind: str, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            return default
        return self._check(key, value, kind)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.opt(key, "string", default)
        if value not in allowed:
            self.fail(key, f"is {value!r}; expected one of {', '.join(allowed)}")
        return str(value)

    def _check(self, key: str, value: Any, kind: str) -> Any:
        ok = {
            "string": isinstance(value, str),
            "number": is_finite_number(value),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "object": isinstance(value, dict),
            "list": isinstance(value, list),
        }[kind]
        if not ok:
            shown = f" ({value!r})" if isinstance(value, (str, int, float, bool)) else ""
            self.fail(key, f"should be {_KIND_NAMES[kind]}, not {_kind(value)}{shown}")
        if kind == "number":
            return float(value)
        return value


# ------------------------------------------------------------------------------------------------
# Missing media and relinking
# ------------------------------------------------------------------------------------------------


def missing_media(project: Project) -> list[Path]:
    """The media files the project refers to that are not there (video first), without repeats."""
    missing: list[Path] = []
    for p in project.media_paths():
        if not p.is_file() and p not in missing:
            missing.append(p)
    return missing


def relink(project: Project, old_path: str | Path, new_path: str | Path, *, others: bool = True) -> list[Path]:
    """Point every reference to ``old_path`` at ``new_path``.

    With ``others`` (the default), other *missing* media that lived in ``old_path``'s folder (or
    below it) are looked for at the same place relative to ``new_path``'s folder and relinked when found:
    moving a whole media folder then needs one answer from the user, not one per file.
    Returns the old paths that were relinked (``old_path`` first)."""
    old = Path(os.path.abspath(old_path))
    new = Path(os.path.abspath(new_path))
    mapping: dict[Path, Path] = {old: new}
    if others:
        for p in missing_media(project):
            p_abs = Path(os.path.abspath(p))
            if p_abs in mapping:
                continue
            try:
                rel = p_abs.relative_to(old.parent)
            except ValueError:
                continue
            candidate = new.parent / rel
            if candidate.is_file():
                mapping[p_abs] = candidate
    relinked: list[Path] = []

    def swap(p: Path) -> Path:
        p_abs = Path(os.path.abspath(p))
        if p_abs in mapping:
            if p_abs not in relinked:
                relinked.append(p_abs)
            return mapping[p_abs]
        return p

    if project.video is not None:
        project.video.path = swap(project.video.path)
    for track in project.tracks:
        track.path = swap(track.path)
    relinked.sort(key=lambda p: p != old)
    return relinked
