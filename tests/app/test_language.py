"""Each dub track's language is detected with Whisper in the background load and set as its tag
(one undo step) unless the user chose one; the inspector says where the tag comes from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.media_jobs import MIN_LANGUAGE_PROBABILITY, detect_track_language
from tests.app.helpers import wait_idle


def _wait_loaded(qtbot, window, track_id: str) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: window.session.tracks[track_id].duration_s is not None, timeout=120000)
    wait_idle(qtbot, window, 120000)


@pytest.mark.media
def test_detected_language_replaces_the_placeholder_as_one_undo_step(qtbot, window, shared_media: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A name that says nothing about the language: the placeholder is 'und' until detection lands.
    take = tmp_path / "take_one.wav"
    take.symlink_to(shared_media / "audio" / "dub_german1.wav")
    [track_id] = window.add_tracks([take])
    assert window.doc.project.track(track_id).language == "und"
    window.inspector.show_item("track", track_id)
    assert "detecting the language" in window.inspector.track_lang_note.text()
    _wait_loaded(qtbot, window, track_id)

    detected = window.session.tracks[track_id].language
    assert detected.code == "de" and detected.probability >= MIN_LANGUAGE_PROBABILITY
    assert window.doc.project.track(track_id).language == "de"
    assert window.doc.stack.undo_label == "Set detected language de"
    assert window.inspector.track_lang.text() == "de"
    assert window.inspector.track_lang_note.text() == f"de (detected, {detected.probability:.0%})"
    assert not window.errors
    # Undo takes back the detection alone; the track stays.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.doc.project.track(track_id).language == "und"
    assert window.inspector.track_lang_note.text().endswith("; kept und")


@pytest.mark.media
def test_a_language_typed_by_the_user_is_never_overridden(qtbot, window, shared_media: Path) -> None:  # type: ignore[no-untyped-def]
    [track_id] = window.add_tracks([shared_media / "audio" / "dub_german2.wav"])
    assert window.doc.project.track(track_id).language == "de"  # the file-name guess
    window.inspector.show_item("track", track_id)
    edit = window.inspector.track_lang
    edit.clear()
    qtbot.keyClicks(edit, "fr")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.session.tracks[track_id].language is None  # detection has not landed yet
    assert window.doc.project.track(track_id).language == "fr"
    _wait_loaded(qtbot, window, track_id)

    detected = window.session.tracks[track_id].language
    assert detected.code == "de" and detected.confident
    assert window.doc.project.track(track_id).language == "fr"
    assert window.doc.stack.undo_label == "Change track language"
    assert window.inspector.track_lang_note.text() == f"de (detected, {detected.probability:.0%}); set to fr by you"


def test_a_tone_keeps_its_placeholder_language(qtbot, window, tone_track: Path) -> None:  # type: ignore[no-untyped-def]
    [track_id] = window.add_tracks([tone_track])
    _wait_loaded(qtbot, window, track_id)
    view = window.session.tracks[track_id]
    assert view.language is not None and view.language.code is None and view.language.note == "no speech found"
    assert window.doc.project.track(track_id).language == "de"  # the file-name guess stays
    assert window.doc.stack.undo_label.startswith("Add track")
    window.inspector.show_item("track", track_id)
    assert window.inspector.track_lang_note.text() == "de (guessed from the file name); not detected: no speech found"
    assert not window.errors


def test_whisper_on_a_tone_is_not_confident() -> None:
    # Forced to read a pure tone as speech, Whisper still names a language, with a low probability.
    t = np.arange(2 * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    result = detect_track_language(tone, [(0.0, 2.0)])
    assert result.code is not None and 0.0 < result.probability < MIN_LANGUAGE_PROBABILITY
    assert not result.confident and result.note == "not confident"
