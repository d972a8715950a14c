"""The preview's dub mix is written to WAV a block at a time, from an array or the mixer's temporary file."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from app.playback import write_wav
from engine.audio.pcm import PcmFile


def test_wav_written_in_blocks_holds_every_sample_from_an_array_or_a_pcm_file(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (10_007, 2)).astype(np.float32)
    on_disk = PcmFile(len(x), 2)
    on_disk[:] = x
    expected = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    for name, samples in (("array.wav", x), ("file.wav", on_disk)):
        write_wav(tmp_path / name, samples, rate=48000, block=3000)  # the last block is a short one
        with wave.open(str(tmp_path / name)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 48000, len(x))
            assert w.readframes(len(x)) == expected
    assert not list(tmp_path.glob("*.tmp"))
