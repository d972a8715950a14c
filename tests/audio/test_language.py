"""Language detection and transcripts with Whisper-base on the real dubs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio.language import _speech_chunks, _split_words, decode_tokens, detect_language, transcribe
from engine.audio.tracks import load_track
from engine.audio.vad import detect_speech

pytestmark = pytest.mark.media


@pytest.mark.parametrize(
    "clip, code",
    [("dub_german1.wav", "de"), ("dub_german2.wav", "de"), ("dub_german3.wav", "de"),
     ("dub_english3.mp3", "en"), ("dub_japanese2.wav", "ja")],
)
def test_detects_the_language_of_real_dubs(shared_media: Path, clip: str, code: str) -> None:
    track = load_track(shared_media / "audio" / clip)
    found, prob = detect_language(track.audio16k)
    assert found == code and prob > 0.5, (found, prob)


def test_transcript_has_timed_words_inside_the_speech(shared_media: Path) -> None:
    track = load_track(shared_media / "audio" / "dub_german1.wav")
    segments = transcribe(track.audio16k, language="de", beam_size=1)
    assert segments
    text = " ".join(s.text for s in segments)
    assert len(text.split()) >= 5 and any(ch.isalpha() for ch in text)
    speech = detect_speech(track.audio16k).segments
    words = [w for s in segments for w in s.words]
    assert len(words) >= 5
    starts = np.array([w.start_s for w in words])
    assert np.all(np.diff(starts) >= 0)
    for w in words:
        assert 0.0 <= w.start_s <= w.end_s <= track.duration_s + 0.05
        assert 0.0 <= w.probability <= 1.0
    # Words lie in (or next to) the speech VAD found.
    mids = (starts + np.array([w.end_s for w in words])) / 2
    near = [any(s - 0.3 <= m <= e + 0.3 for s, e in speech) for m in mids]
    assert np.mean(near) >= 0.9


def test_silence_has_no_transcript() -> None:
    assert transcribe(np.zeros(16000 * 3, np.float32)) == []


def test_token_decoding_and_word_split() -> None:
    from engine.audio.language import _vocab

    v = _vocab()
    hello = [v.ids["Hello"], v.ids["Ġworld"]] if "Ġworld" in v.ids else []
    if hello:
        assert decode_tokens(hello) == "Hello world"
        assert _split_words(hello, "en") == [[hello[0]], [hello[1]]]
    # Multi-byte characters split over tokens stay one word.
    ids = [i for i, t in enumerate(v.tokens[:50257]) if len(t) == 1][:3]
    assert len(_split_words(ids, "ja")) == 3


def test_speech_chunks_stay_under_30_s() -> None:
    segs = [(0.0, 10.0), (12.0, 25.0), (26.0, 70.0)]
    chunks = _speech_chunks(segs, 80.0)
    assert all(e - s <= 29.0 + 1e-9 for s, e in chunks)
    covered = sum(e - s for s, e in chunks)
    assert covered >= 10 + 13 + 44
