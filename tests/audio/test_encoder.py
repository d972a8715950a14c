"""The torch Whisper encoder read from the CTranslate2 model file."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.encoder import EncoderFormatError, load_encoder, read_variables
from engine.audio.features import _mel_for_encoder
from engine.audio.mel import WINDOW_FRAMES
from tests.audio.signals import bursts

SR = 16000


def speech_like_window() -> np.ndarray:
    """One encoder window (1, 80, 3000) of Whisper-scaled log-mel: 6 s of bursts, then padding."""
    x = bursts(6.0, SR, [(0.5, 1.4), (1.9, 2.6), (3.0, 4.8)])
    mel, pad = _mel_for_encoder(x)
    win = np.full((1, 80, WINDOW_FRAMES), pad, np.float32)
    win[0, :, : mel.shape[1]] = mel
    return win


def test_torch_encoder_reproduces_ctranslate2s_output() -> None:
    """Same weights and architecture: the last layer agrees with CTranslate2's own encoder (which runs
    in int8, so up to quantisation noise)."""
    import ctranslate2

    from engine.audio.whisper_model import load_whisper

    win = speech_like_window()
    ours = load_encoder("cpu").output(win)[0]
    ref = np.asarray(load_whisper().encode(ctranslate2.StorageView.from_array(win), to_cpu=True))[0]
    assert ours.shape == ref.shape == (1500, 512)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
    # Per frame too, not only on average (a few short vectors are dominated by int8 noise).
    cos = np.sum(ours * ref, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert np.median(cos) > 0.995 and np.mean(cos > 0.95) > 0.95


def test_hidden_states_average_the_chosen_blocks() -> None:
    enc = load_encoder("cpu")
    win = speech_like_window()
    b2, b3 = enc.hidden_states(win, (2,)), enc.hidden_states(win, (3,))
    assert np.allclose(enc.hidden_states(win, (2, 3)), (b2 + b3) / 2, atol=1e-4)
    assert not np.allclose(b2, b3, atol=1e-2)
    with pytest.raises(ValueError):
        enc.hidden_states(win, (enc.blocks + 1,))


def test_reader_rejects_a_file_that_is_not_a_model(tmp_path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x63\x00\x00\x00not a model at all")
    with pytest.raises(EncoderFormatError, match="version 99"):
        read_variables(bad)
