"""Undo/redo of every command, merging of drags, the clean state, listeners and revisions."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.project import (
    AddAssignment,
    AddIdentity,
    AddTrack,
    Assignment,
    ChangeRenderSettings,
    Command,
    CommandStack,
    DubTrack,
    EditAssignment,
    FaceIdentity,
    InvalidEdit,
    MacroCommand,
    Project,
    RemoveAssignment,
    RemoveIdentity,
    RemoveTrack,
    RenameIdentity,
    SetTrackGain,
    SetTrackLanguage,
    SetTrackName,
    SetTrackOffset,
    SetTrackPath,
    SetTrackTrim,
    SetVideo,
    Video,
)


def base_project() -> Project:
    return Project(
        video=Video(path=Path("/media/v.mp4")),
        tracks=[DubTrack(id="t1", path=Path("/media/de.wav"), language="de"),
                DubTrack(id="t2", path=Path("/media/fr.wav"), language="fr", offset_s=-0.5)],
        identities=[FaceIdentity(id="p1", name="Anna"), FaceIdentity(id="p2", name="Ben")],
        assignments=[Assignment(id="a1", track_id="t1", identity_id="p1", start_s=0.0, end_s=5.0),
                     Assignment(id="a2", track_id="t2", identity_id="p2", start_s=5.0, end_s=9.0),
                     Assignment(id="a3", track_id="t1", identity_id="p2", start_s=9.0, end_s=10.0)],
    )


COMMANDS: dict[str, Callable[[], Command]] = {
    "set video": lambda: SetVideo(Video(path=Path("/media/other.mov"), content_hash="h")),
    "remove video": lambda: SetVideo(None),
    "add track": lambda: AddTrack(DubTrack(id="t3", path=Path("/m/es.wav"), language="es"), index=0),
    "remove track": lambda: RemoveTrack("t1"),
    "offset": lambda: SetTrackOffset("t1", -2.5),
    "gain": lambda: SetTrackGain("t2", 4.0),
    "trim": lambda: SetTrackTrim("t1", 1.0, 30.0),
    "language": lambda: SetTrackLanguage("t1", "pt-BR"),
    "track name": lambda: SetTrackName("t2", "Français (Marie)"),
    "track path": lambda: SetTrackPath("t2", Path("/new/fr.wav")),
    "add identity": lambda: AddIdentity(FaceIdentity(id="p3", name="Cleo")),
    "remove identity": lambda: RemoveIdentity("p2"),
    "rename identity": lambda: RenameIdentity("p1", "Anna K."),
    "add assignment": lambda: AddAssignment(Assignment(id="a9", track_id="t2", identity_id="p1", start_s=1, end_s=2)),
    "remove assignment": lambda: RemoveAssignment("a2"),
    "edit assignment range": lambda: EditAssignment("a1", start_s=0.5, end_s=4.0),
    "edit assignment people": lambda: EditAssignment("a1", track_id="t2", identity_id="p2"),
    "render settings": lambda: ChangeRenderSettings(crf=22, preset="slow", audio_mode="dub_plus_original"),
    "macro": lambda: MacroCommand("Two things", [SetTrackGain("t1", -6.0), RenameIdentity("p2", "B")]),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_do_undo_redo(name: str) -> None:
    project = base_project()
    original = copy.deepcopy(project)
    stack = CommandStack(project)
    stack.push(COMMANDS[name]())
    after = copy.deepcopy(project)
    assert after != original, "the command changed nothing"
    assert stack.can_undo and not stack.can_redo and stack.is_modified
    assert stack.undo_label
    stack.undo()
    assert project == original
    assert not stack.can_undo and stack.can_redo and not stack.is_modified
    stack.redo()
    assert project == after
    stack.undo()
    stack.undo()  # nothing more to undo: harmless
    assert project == original


def test_remove_track_removes_and_restores_its_assignments_in_place() -> None:
    project = base_project()
    stack = CommandStack(project)
    stack.push(RemoveTrack("t1"))
    assert [a.id for a in project.assignments] == ["a2"]
    stack.undo()
    assert [a.id for a in project.assignments] == ["a1", "a2", "a3"]
    assert [t.id for t in project.tracks] == ["t1", "t2"]


def test_remove_identity_cascades() -> None:
    project = base_project()
    stack = CommandStack(project)
    stack.push(RemoveIdentity("p2"))
    assert [a.id for a in project.assignments] == ["a1"]
    stack.undo()
    assert [a.id for a in project.assignments] == ["a1", "a2", "a3"]


@pytest.mark.parametrize(
    "bad",
    [
        lambda: SetTrackOffset("nope", 1.0),
        lambda: SetTrackOffset("t1", float("nan")),
        lambda: SetTrackTrim("t1", 5.0, 2.0),
        lambda: SetTrackTrim("t1", -1.0, None),
        lambda: SetTrackLanguage("t1", "German language"),
        lambda: AddTrack(DubTrack(id="t1", path=Path("/x.wav"))),
        lambda: AddAssignment(Assignment(id="a9", track_id="t1", identity_id="ghost", start_s=0, end_s=1)),
        lambda: AddAssignment(Assignment(id="a1", track_id="t1", identity_id="p1", start_s=0, end_s=1)),
        lambda: EditAssignment("a1", end_s=-1.0),
        lambda: EditAssignment("a1", start_s=-0.1),
        lambda: ChangeRenderSettings(crf=80),
        lambda: ChangeRenderSettings(audio_mode="loud"),
        lambda: RemoveAssignment("zz"),
        lambda: RenameIdentity("zz", "x"),
        lambda: MacroCommand("half", [SetTrackGain("t1", 3.0), SetTrackGain("zz", 1.0)]),
    ],
)
def test_invalid_edits_change_nothing(bad: Callable[[], Command]) -> None:
    project = base_project()
    original = copy.deepcopy(project)
    stack = CommandStack(project)
    with pytest.raises(InvalidEdit):
        stack.push(bad())
    assert project == original
    assert not stack.can_undo and not stack.is_modified


def test_unknown_render_setting_is_refused() -> None:
    with pytest.raises(InvalidEdit, match="unknown render setting"):
        ChangeRenderSettings(colour="red")


def test_dragging_an_offset_is_one_undo_step() -> None:
    project = base_project()
    stack = CommandStack(project)
    for x in (0.1, 0.2, 0.35, 0.5):
        stack.push(SetTrackOffset("t1", x))
    assert stack.labels() == ["Move track"]
    assert project.track("t1").offset_s == 0.5
    stack.end_merge()  # mouse released
    stack.push(SetTrackOffset("t1", 0.9))  # a second drag: its own step
    assert len(stack.labels()) == 2
    stack.undo()
    assert project.track("t1").offset_s == 0.5
    stack.undo()
    assert project.track("t1").offset_s == 0.0


def test_different_targets_or_kinds_do_not_merge() -> None:
    project = base_project()
    stack = CommandStack(project)
    stack.push(SetTrackOffset("t1", 1.0))
    stack.push(SetTrackOffset("t2", 1.0))
    stack.push(SetTrackGain("t2", 1.0))
    stack.push(SetTrackGain("t2", 2.0))
    stack.push(EditAssignment("a1", end_s=4.0))
    stack.push(EditAssignment("a1", end_s=3.0))
    stack.push(EditAssignment("a1", start_s=1.0))
    assert stack.labels() == ["Move track", "Move track", "Change track gain", "Move assignment", "Move assignment"]
    stack.undo()
    stack.undo()
    assert project.assignment("a1").end_s == 5.0


def test_merge_without_merge_flag() -> None:
    stack = CommandStack(base_project())
    stack.push(SetTrackGain("t1", 1.0))
    stack.push(SetTrackGain("t1", 2.0), merge=False)
    assert len(stack.labels()) == 2


def test_drag_back_to_start_leaves_no_step() -> None:
    project = base_project()
    stack = CommandStack(project)
    stack.push(SetTrackOffset("t1", 0.4))
    stack.push(SetTrackOffset("t1", 0.0))
    assert not stack.can_undo and not stack.is_modified


def test_noop_edit_is_not_recorded() -> None:
    stack = CommandStack(base_project())
    stack.push(SetTrackGain("t1", 0.0))
    stack.push(RenameIdentity("p1", "Anna"))
    assert not stack.can_undo and stack.revision == 0


def test_clean_state_and_merge_across_a_save() -> None:
    project = base_project()
    stack = CommandStack(project)
    stack.push(SetTrackOffset("t1", 0.1))
    stack.mark_clean()
    assert not stack.is_modified
    stack.push(SetTrackOffset("t1", 0.2))  # same kind right after a save: must not merge into the saved step
    assert stack.is_modified and len(stack.labels()) == 2
    stack.undo()
    assert not stack.is_modified
    stack.undo()
    assert stack.is_modified
    stack.redo()
    assert not stack.is_modified


def test_clean_state_lost_when_its_branch_is_discarded() -> None:
    stack = CommandStack(base_project())
    stack.push(SetTrackGain("t1", 1.0))
    stack.push(SetTrackName("t1", "x"))
    stack.mark_clean()
    stack.undo()
    stack.push(SetTrackLanguage("t1", "en"))
    assert stack.is_modified
    stack.undo()
    assert stack.is_modified  # the saved state can no longer be reached
    assert not stack.can_redo or stack.redo_label == "Change track language"


def test_labels_listeners_and_revision() -> None:
    project = base_project()
    stack = CommandStack(project)
    seen: list[tuple[bool, bool, str, str, int]] = []
    stack.add_listener(lambda s: seen.append((s.can_undo, s.can_redo, s.undo_label, s.redo_label, s.revision)))
    stack.push(SetTrackName("t1", "Deutsch"))
    stack.push(SetTrackName("t1", "Deutsch (Jonas)"))  # merged: still notified, revision grows
    stack.undo()
    stack.redo()
    assert seen == [
        (True, False, "Rename track", "", 1),
        (True, False, "Rename track", "", 2),
        (False, True, "", "Rename track", 3),
        (True, False, "Rename track", "", 4),
    ]


def test_broken_listener_does_not_break_editing() -> None:
    stack = CommandStack(base_project())

    def broken(_: CommandStack) -> None:
        raise RuntimeError("view is gone")

    stack.add_listener(broken)
    stack.push(SetTrackGain("t1", 2.0))
    assert stack.project.track("t1").gain_db == 2.0
    stack.remove_listener(broken)


def test_history_limit_keeps_the_newest_steps() -> None:
    project = base_project()
    stack = CommandStack(project, limit=3)
    stack.mark_clean()
    for i in range(5):
        stack.push(SetTrackName("t1", f"n{i}"), merge=False)
    assert stack.labels() == ["Rename track"] * 3
    while stack.can_undo:
        stack.undo()
    assert project.track("t1").name == "n1"
    assert stack.is_modified  # the saved state fell off the history


def test_reset_forgets_history() -> None:
    stack = CommandStack(base_project())
    stack.push(SetTrackGain("t1", 1.0))
    fresh = Project()
    stack.reset(fresh)
    assert stack.project is fresh and not stack.can_undo and not stack.is_modified


def test_snapshot_is_independent() -> None:
    stack = CommandStack(base_project())
    snap = stack.snapshot()
    stack.push(SetTrackGain("t1", 1.0))
    assert snap.track("t1").gain_db == 0.0
