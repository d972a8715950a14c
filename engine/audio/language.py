"""Spoken language and transcript of a track, with the same Whisper-base model as the features.

``detect_language`` reads the 30 s from the track's first speech. ``transcribe`` cuts the track into
chunks of at most 30 s along the speech segments that VAD found (no decoding of silence, where
Whisper tends to invent text), decodes each with timestamp tokens, and times every word with
cross-attention alignment (the model's alignment heads, CTranslate2's ``align``). The byte-level BPE
vocabulary is decoded here from ``vocabulary.txt``; no tokenizer package is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from engine.audio.mel import SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES, log_mel_raw
from engine.audio.vad import detect_speech
from engine.errors import BadInputError
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel

# Languages written without spaces between words: each character-complete token is a "word".
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}
_lock = threading.Lock()


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float


@dataclass(frozen=True)
class TranscriptSegment:
    start_s: float
    end_s: float
    text: str
    words: list[Word] = field(default_factory=list)
    no_speech_prob: float = 0.0


@dataclass(frozen=True)
class _Vocab:
    tokens: list[str]
    ids: dict[str, int]
    timestamp_begin: int
    eot: int
    sot: int
    transcribe: int
    no_timestamps: int
    languages: dict[str, int]


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    # GPT-2's reversible byte <-> printable-character table that byte-level BPE vocabularies use.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


@lru_cache(maxsize=1)
def _vocab() -> _Vocab:
    from engine.audio.whisper_model import model_config, whisper_model_dir

    lines = (whisper_model_dir() / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    ids = {t: i for i, t in enumerate(lines)}
    cfg = model_config()
    languages = {lines[i][2:-2]: i for i in cfg.get("lang_ids", [])}
    return _Vocab(lines, ids, ids["<|0.00|>"], ids["<|endoftext|>"], ids["<|startoftranscript|>"],
                  ids["<|transcribe|>"], ids["<|notimestamps|>"], languages)


def token_bytes(token_id: int) -> bytes:
    """The bytes a text token stands for."""
    table = _byte_decoder()
    return bytes(table.get(ch, ord("?")) for ch in _vocab().tokens[token_id])


def decode_tokens(token_ids: list[int]) -> str:
    """Text of a sequence of text tokens (special and timestamp tokens are skipped)."""
    v = _vocab()
    data = b"".join(token_bytes(t) for t in token_ids if t < v.eot)
    return data.decode("utf-8", errors="replace")


def supported_languages() -> list[str]:
    """Whisper's language codes (e.g. 'de', 'en', 'ja')."""
    return sorted(_vocab().languages)


def _window_mel(audio16k: np.ndarray) -> tuple[np.ndarray, int]:
    """Scaled log-mel of up to 30 s, padded to 3000 frames, and the count of real frames."""
    raw = log_mel_raw(audio16k[:WINDOW_SAMPLES])
    top = max(float(raw.max()) if raw.size else -10.0, -10.0)
    mel = (np.maximum(raw, top - 8.0) + 4.0) / 4.0
    out = np.full((1, 80, WINDOW_FRAMES), (top - 8.0 + 4.0) / 4.0 if top - 8.0 > -10.0 else -1.5, np.float32)
    n = min(WINDOW_FRAMES, mel.shape[1])
    out[0, :, :n] = mel[:, :n]
    return out, n


def _storage(array: np.ndarray):  # -> ctranslate2.StorageView
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array, dtype=np.float32))


def detect_language(
    audio16k: np.ndarray,
    speech_start_s: float | None = None,
    threads: int | None = None,
) -> tuple[str, float]:
    """The spoken language of a 16 kHz mono track: (code such as 'de', probability).

    Reads 30 s from the first speech (found with VAD unless ``speech_start_s`` is given).
    """
    from engine.audio.whisper_model import load_whisper

    x = np.asarray(audio16k, dtype=np.float32).reshape(-1)
    if len(x) < SAMPLE_RATE // 10:
        raise BadInputError("the track is too short to detect its language (under 0.1 s)")
    if speech_start_s is None:
        # Only the first speech matters: VAD over the first minute, not the whole track.
        segs = detect_speech(x[: 60 * SAMPLE_RATE]).segments
        speech_start_s = segs[0][0] if segs else 0.0
    start = max(0, round((speech_start_s - 0.1) * SAMPLE_RATE))
    mel, _ = _window_mel(x[start:])
    model = load_whisper(threads)
    with _lock:
        result = model.detect_language(_storage(mel))[0]
    token, prob = result[0]
    return token.strip("<|>"), float(prob)


def _speech_chunks(segments: list[tuple[float, float]], duration: float, max_s: float = 29.0,
                   pad_s: float = 0.2) -> list[tuple[float, float]]:
    """Group speech segments into chunks of at most ``max_s`` seconds (long segments are split)."""
    pieces: list[tuple[float, float]] = []
    for s, e in segments:
        s, e = max(0.0, s - pad_s), min(duration, e + pad_s)
        while e - s > max_s:
            pieces.append((s, s + max_s))
            s += max_s
        pieces.append((s, e))
    chunks: list[tuple[float, float]] = []
    for s, e in pieces:
        if chunks and e - chunks[-1][0] <= max_s:
            chunks[-1] = (chunks[-1][0], max(chunks[-1][1], e))
        else:
            chunks.append((s, e))
    return chunks


def _split_words(token_ids: list[int], language: str) -> list[list[int]]:
    """Group text tokens into words: at leading spaces, or per complete character for CJK/Thai."""
    words: list[list[int]] = []
    current: list[int] = []
    pending = b""
    for t in token_ids:
        b = token_bytes(t)
        starts_word = b[:1] == b" " and language not in _NO_SPACE_LANGUAGES
        if starts_word and current and not pending:
            words.append(current)
            current = []
        current.append(t)
        pending += b
        try:
            pending.decode("utf-8")
            complete = True
        except UnicodeDecodeError:
            complete = False
        if complete:
            pending = b""
            if language in _NO_SPACE_LANGUAGES:
                words.append(current)
                current = []
    if current:
        words.append(current)
    return words


def _parse_segments(token_ids: list[int], offset_s: float, limit_s: float) -> list[tuple[float, float, list[int]]]:
    """Split a decoded sequence at its timestamp tokens: [(start_s, end_s, text token ids)]."""
    v = _vocab()
    out: list[tuple[float, float, list[int]]] = []
    start: float | None = None
    text: list[int] = []
    last_time = 0.0
    for t in token_ids:
        if t >= v.timestamp_begin:
            time = (t - v.timestamp_begin) * 0.02
            if text:
                out.append((offset_s + (start if start is not None else last_time), offset_s + time, text))
                text = []
                start = None
            else:
                start = time
            last_time = time
        elif t < v.eot:
            text.append(t)
    if text:
        out.append((offset_s + (start if start is not None else last_time), offset_s + limit_s, text))
    return out


def transcribe(
    audio16k: np.ndarray,
    language: str | None = None,
    *,
    beam_size: int = 5,
    word_timestamps: bool = True,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[TranscriptSegment]:
    """Transcript of a 16 kHz mono track: segments (track time, seconds) with timed words.

    ``language``: a Whisper code ('de', 'en', ...); None detects it first.
    """
    from engine.audio.whisper_model import load_whisper

    v = _vocab()
    x = np.asarray(audio16k, dtype=np.float32).reshape(-1)
    duration = len(x) / SAMPLE_RATE
    vad = detect_speech(x)
    if not vad.segments:
        return []
    if language is None:
        language, _ = detect_language(x, speech_start_s=vad.segments[0][0], threads=threads)
    if language not in v.languages:
        raise BadInputError(f"unknown language code {language!r}", hint="use a Whisper code such as de, en, fr")
    prompt = [v.sot, v.languages[language], v.transcribe]
    model = load_whisper(threads)
    chunks = _speech_chunks(vad.segments, duration)
    reporter = ProgressReporter(progress, "transcript", len(chunks))
    result: list[TranscriptSegment] = []
    for ci, (c0, c1) in enumerate(chunks):
        check_cancel(cancel)
        i0, i1 = round(c0 * SAMPLE_RATE), round(c1 * SAMPLE_RATE)
        mel, n_frames = _window_mel(x[i0:i1])
        with _lock:
            encoded = model.encode(_storage(mel), to_cpu=False)
            gen = model.generate(encoded, [prompt], beam_size=beam_size, return_no_speech_prob=True,
                                 return_scores=True, max_length=224, suppress_blank=True)[0]
        ids = list(gen.sequences_ids[0])
        no_speech = float(getattr(gen, "no_speech_prob", 0.0))
        score = float(gen.scores[0]) if gen.scores else 0.0  # length-normalised log probability
        if no_speech > 0.6 and score < -1.0:
            # Whisper's own rule: likely no speech and a poor decode, so text here would be invented.
            reporter.update(ci + 1)
            continue
        parsed = _parse_segments(ids, c0, c1 - c0)
        text_ids = [t for _, _, toks in parsed for t in toks]
        word_times: list[tuple[float, float, float]] = []
        groups: list[list[int]] = []
        if word_timestamps and text_ids:
            groups = _split_words(text_ids, language)
            with _lock:
                align = model.align(encoded, prompt, [[*text_ids, v.eot]], n_frames // 2 * 2)[0]
            word_times = _word_times(align, groups, c0)
        # Words go to the segment that holds their first token.
        k = 0
        gi = 0
        for s, e, toks in parsed:
            seg_words: list[Word] = []
            end_k = k + len(toks)
            while gi < len(groups) and k < end_k:
                ws, we, wp = word_times[gi]
                word = decode_tokens(groups[gi]).strip()
                if word:  # a lone space token (between CJK phrases) is no word
                    seg_words.append(Word(round(ws, 3), round(we, 3), word, round(wp, 4)))
                k += len(groups[gi])
                gi += 1
            k = max(k, end_k)
            text = decode_tokens(toks).strip()
            if text:
                result.append(TranscriptSegment(round(s, 3), round(min(e, c1), 3), text, seg_words, no_speech))
        reporter.update(ci + 1)
    reporter.finish()
    return result


def _word_times(align, groups: list[list[int]], offset_s: float) -> list[tuple[float, float, float]]:
    """(start_s, end_s, probability) per word from an alignment path over text tokens (+ end token)."""
    pairs = np.asarray(align.alignments, dtype=np.int64).reshape(-1, 2)
    probs = list(align.text_token_probs)
    n_tokens = sum(len(g) for g in groups)
    if len(pairs) == 0:
        return [(offset_s, offset_s, 0.0)] * len(groups)
    text_idx, time_idx = pairs[:, 0], pairs[:, 1]
    jumps = np.concatenate([[True], np.diff(text_idx) != 0])
    # The time (s) at which each token starts on the path; index n_tokens is the end token.
    token_start = np.full(n_tokens + 1, np.nan)
    for ti, tm in zip(text_idx[jumps], time_idx[jumps], strict=True):
        if 0 <= ti <= n_tokens and np.isnan(token_start[ti]):
            token_start[ti] = tm / 50.0
    # Fill gaps forward so every boundary has a time.
    last = 0.0
    for i in range(len(token_start)):
        if np.isnan(token_start[i]):
            token_start[i] = last
        last = token_start[i]
    out: list[tuple[float, float, float]] = []
    k = 0
    for g in groups:
        s = token_start[k]
        e = token_start[min(k + len(g), n_tokens)]
        p = float(np.mean(probs[k : k + len(g)])) if probs[k : k + len(g)] else 0.0
        out.append((offset_s + float(s), offset_s + float(max(e, s)), p))
        k += len(g)
    return out
