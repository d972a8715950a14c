"""Project files: round-trip, atomic save, clear errors on bad files, missing media and relink."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from engine.errors import OutputError, ProjectError
from engine.project import (
    SCHEMA_VERSION,
    Assignment,
    DubTrack,
    FaceIdentity,
    Project,
    RenderSettings,
    Video,
    load_project,
    missing_media,
    relink,
    save_project,
    store,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def make_project(media: Path) -> Project:
    video = _touch(media / "Szene 1 – Café.mp4")
    de = _touch(media / "dubs" / "deutsch ü.wav")
    ja = _touch(media / "dubs" / "日本語.m4a")
    return Project(
        video=Video(path=video, content_hash="abc123", probe={"width": 1280, "height": 720, "fps": 25.0}),
        tracks=[
            DubTrack(id="t1", path=de, language="de", offset_s=-1.25, gain_db=-3.5, trim_in_s=0.5,
                     trim_out_s=61.0, name="Deutsch"),
            DubTrack(id="t2", path=ja, language="ja", offset_s=0.1),
        ],
        identities=[FaceIdentity(id="p1", name="Anna"), FaceIdentity(id="p2", name="")],
        assignments=[Assignment(id="a1", track_id="t1", identity_id="p1", start_s=0.0, end_s=12.5),
                     Assignment(id="a2", track_id="t2", identity_id="p2", start_s=3.0, end_s=4.0)],
        render=RenderSettings(engine="net", preset="medium", crf=20, audio_mode="original_ducked",
                              language_mode="one_file_multi_track", device="cpu"),
        ui={"zoom": 2.5, "playhead_s": 3.2, "panels": [1, 2]},
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    target = tmp_path / "projekt ö" / "my dub.lipdub.json"
    target.parent.mkdir()
    save_project(project, target)
    loaded = load_project(target)
    assert loaded == project
    assert missing_media(loaded) == []
    # non-ASCII is written as UTF-8 text, not escaped
    text = target.read_text(encoding="utf-8")
    assert "日本語" in text and "Café" in text


def test_paths_are_stored_relative_and_survive_moving_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "job"
    project = make_project(root / "media")
    save_project(project, root / "p.json")
    data = json.loads((root / "p.json").read_text(encoding="utf-8"))
    assert data["video"]["path"] == "media/Szene 1 – Café.mp4"
    assert data["tracks"][0]["path"] == "media/dubs/deutsch ü.wav"
    assert data["schema_version"] == SCHEMA_VERSION
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    loaded = load_project(moved / "p.json")
    assert loaded.video is not None and loaded.video.path == moved / "media" / "Szene 1 – Café.mp4"
    assert missing_media(loaded) == []


def test_project_file_moved_alone_finds_media_by_absolute_path(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    (tmp_path / "a").mkdir()
    save_project(project, tmp_path / "a" / "p.json")
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    os.replace(tmp_path / "a" / "p.json", tmp_path / "b" / "deeper" / "p.json")
    loaded = load_project(tmp_path / "b" / "deeper" / "p.json")
    assert missing_media(loaded) == []
    assert loaded.tracks[1].path == tmp_path / "media" / "dubs" / "日本語.m4a"


def test_empty_project_round_trip(tmp_path: Path) -> None:
    save_project(Project(), tmp_path / "empty.json")
    assert load_project(tmp_path / "empty.json") == Project()


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "p.json"
    save_project(Project(ui={"version": "old"}), target)
    before = target.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_disk)
    with pytest.raises(OutputError) as info:
        save_project(Project(ui={"version": "new"}), target)
    assert "disk is full" in str(info.value)
    assert str(target) in str(info.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"], "a temporary file was left behind"


def test_atomic_save_keeps_old_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "p.json"
    save_project(Project(ui={"version": "old"}), target)
    before = target.read_bytes()

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_project(Project(ui={"version": "new"}), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_save_into_read_only_folder_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"read-only|permission"):
            save_project(Project(), folder / "p.json")
    finally:
        folder.chmod(0o755)


def test_save_refused_by_the_system_says_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same as a read-only folder, simulated (tests run as root, where permissions do not stop)."""
    real_open = os.open

    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(store.os, "open", refuse)
    with pytest.raises(OutputError, match="read-only disk"):
        save_project(Project(), tmp_path / "p.json")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="folder does not exist"):
        save_project(Project(), tmp_path / "nope" / "p.json")


def test_save_keeps_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "p.json"
    save_project(Project(), target)
    target.chmod(0o640)
    save_project(Project(ui={"a": 1}), target)
    assert target.stat().st_mode & 0o777 == 0o640


# --- bad files -------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "p.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _valid_doc(tmp_path: Path) -> dict:
    save_project(make_project(tmp_path / "media"), tmp_path / "good.json")
    return json.loads((tmp_path / "good.json").read_text(encoding="utf-8"))


def test_broken_json_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "schema_version": 1,\n  "tracks": [\n    {"id": "a",}\n  ]\n}\n')
    with pytest.raises(ProjectError) as info:
        load_project(path)
    text = str(info.value)
    assert str(path) in text and "not valid JSON" in text and "line 4" in text and "column" in text


def test_truncated_json(tmp_path: Path) -> None:
    good = json.dumps(_valid_doc(tmp_path), indent=2)
    path = _write(tmp_path, good[: len(good) // 2])
    with pytest.raises(ProjectError, match="not valid JSON"):
        load_project(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("[1, 2]", "not a Lipdub Studio project"),
        ('{"hello": 1}', "no 'schema_version'"),
        ('{"format": "other-app", "schema_version": 1}', "its format is 'other-app'"),
        ('{"schema_version": "1"}', "'schema_version' should be a whole number"),
        ('{"schema_version": 1, "tracks": [{"id": "t", "path": "a.wav", "offset_s": NaN}]}', "not valid JSON"),
    ],
)
def test_not_a_project(tmp_path: Path, content: str, expected: str) -> None:
    with pytest.raises(ProjectError, match=expected):
        load_project(_write(tmp_path, content))


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\xff\xfe")
    with pytest.raises(ProjectError, match="not a project file"):
        load_project(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no such project file"):
        load_project(tmp_path / "nope.json")
    with pytest.raises(ProjectError, match="is a folder"):
        load_project(tmp_path)


def test_newer_schema_says_update(tmp_path: Path) -> None:
    doc = _valid_doc(tmp_path)
    doc["schema_version"] = SCHEMA_VERSION + 4
    doc["saved_by"] = "lipdub-studio 9.0"
    with pytest.raises(ProjectError) as info:
        load_project(_write(tmp_path, json.dumps(doc)))
    text = str(info.value)
    assert f"newer Lipdub Studio (lipdub-studio 9.0), project format version {SCHEMA_VERSION + 4}" in text
    assert f"reads up to version {SCHEMA_VERSION}" in text
    assert "update Lipdub Studio" in text


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["tracks"][1].pop("path"), r"'tracks\[1\].path' is missing"),
        (lambda d: d["tracks"][0].update(offset_s="-1.2"), r"'tracks\[0\].offset_s' should be a number, not a string \('-1.2'\)"),
        (lambda d: d["tracks"][0].update(gain_db=True), r"'tracks\[0\].gain_db' should be a number, not true/false"),
        (lambda d: d["tracks"][0].update(language="German!"), r"'tracks\[0\].language' is 'German!'"),
        (lambda d: d["tracks"][0].update(trim_out_s=0.1), r"'tracks\[0\].trim_out_s' is 0.1; it must be after"),
        (lambda d: d["tracks"].__setitem__(0, "t1"), r"'tracks\[0\]' should be an object, not a string"),
        (lambda d: d.update(tracks={}), r"'tracks' should be a list, not an object"),
        (lambda d: d["assignments"][0].update(end_s=-1), r"'assignments\[0\].end_s' is -1.0; it must be after"),
        (lambda d: d["assignments"][0].update(track_id="zz"), r"'assignments\[0\].track_id' names no dub track"),
        (lambda d: d["assignments"][1].update(identity_id="zz"), r"'assignments\[1\].identity_id' names no face"),
        (lambda d: d["assignments"][1].update(id="a1"), r"'assignments\[1\].id' repeats the id 'a1'"),
        (lambda d: d["identities"][0].pop("id"), r"'identities\[0\].id' is missing"),
        (lambda d: d["render"].update(audio_mode="loud"), r"'render.audio_mode' is 'loud'; expected one of dub_only"),
        (lambda d: d["render"].update(crf=18.5), r"'render.crf' should be a whole number"),
        (lambda d: d["render"].update(crf=99), r"'render.crf' is 99"),
        (lambda d: d["video"].update(path=""), r"'video.path' is empty"),
        (lambda d: d["video"].update(probe=[1]), r"'video.probe' should be an object, not a list"),
        (lambda d: d.update(video=3), r"'video' should be an object"),
    ],
)
def test_wrong_fields_are_named(tmp_path: Path, edit, expected: str) -> None:
    doc = _valid_doc(tmp_path)
    edit(doc)
    path = _write(tmp_path, json.dumps(doc))
    with pytest.raises(ProjectError, match=expected) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_optional_fields_default(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "tracks": [{"id": "t", "path": "a.wav"}]}
    project = load_project(_write(tmp_path, json.dumps(doc)))
    assert project.tracks[0] == DubTrack(id="t", path=tmp_path / "a.wav")
    assert project.render == RenderSettings()
    assert project.video is None


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    doc = _valid_doc(tmp_path)
    doc["future_thing"] = {"x": 1}
    doc["tracks"][0]["colour"] = "red"
    assert load_project(_write(tmp_path, json.dumps(doc))).tracks[0].id == "t1"


# --- missing media and relink ----------------------------------------------------------------


def test_missing_media_is_reported_not_fatal(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    save_project(project, tmp_path / "p.json")
    (tmp_path / "media" / "dubs" / "deutsch ü.wav").unlink()
    loaded = load_project(tmp_path / "p.json")
    assert missing_media(loaded) == [tmp_path / "media" / "dubs" / "deutsch ü.wav"]


def test_relink_one_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    old = project.tracks[0].path
    new = _touch(tmp_path / "new place" / "de.wav")
    old.unlink()
    assert missing_media(project) == [old]
    assert relink(project, old, new) == [old]
    assert project.tracks[0].path == new
    assert missing_media(project) == []


def test_relink_moved_folder_finds_the_others(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    (tmp_path / "proj").mkdir()
    save_project(project, tmp_path / "proj" / "p.json")
    (tmp_path / "media").rename(tmp_path / "moved media")
    loaded = load_project(tmp_path / "proj" / "p.json")
    assert len(missing_media(loaded)) == 3
    assert loaded.video is not None
    old_video = loaded.video.path
    relinked = relink(loaded, old_video, tmp_path / "moved media" / old_video.name)
    assert relinked[0] == old_video and len(relinked) == 3
    assert missing_media(loaded) == []
    assert loaded.tracks[1].path == tmp_path / "moved media" / "dubs" / "日本語.m4a"
    # saved again, the new places stick
    save_project(loaded, tmp_path / "proj" / "p.json")
    assert missing_media(load_project(tmp_path / "proj" / "p.json")) == []


def test_relink_without_others(tmp_path: Path) -> None:
    project = make_project(tmp_path / "media")
    (tmp_path / "media").rename(tmp_path / "m2")
    assert project.video is not None
    old = project.video.path
    relink(project, old, tmp_path / "m2" / old.name, others=False)
    assert len(missing_media(project)) == 2


def test_export_languages_are_those_of_assigned_tracks_else_all() -> None:
    from engine.project import Assignment, DubTrack, FaceIdentity, Project

    p = Project(tracks=[DubTrack(id="a", path=Path("a.wav"), language="de"),
                        DubTrack(id="b", path=Path("b.wav"), language="fr"),
                        DubTrack(id="c", path=Path("c.wav"), language="de")],
                identities=[FaceIdentity(id="0", name="P")])
    assert p.export_languages() == ["de", "fr"]
    p.assignments.append(Assignment(id="x", track_id="b", identity_id="0", start_s=0.0, end_s=1.0))
    assert p.export_languages() == ["fr"]
