"""The offline export: decode -> render -> encode -> mux, streamed, bounded in memory, never half-written.

Three stages overlap, joined by bounded queues, so at most ``frames_in_flight`` decoded frames wait
between any two of them and memory does not grow with the video's length:

    decode thread  --(idx, YUV frame)-->  caller: render hook  --(YUV frame)-->  encode thread (+ audio, mux)

Design choices (what is kept, and how):

- **Pass-through frames stay YUV.** A frame with nothing to render (``needs_render`` says no, or the
  renderer returns its input) goes from the decoder to the encoder as decoded: no RGB round trip, no
  colour loss, no conversion cost. A rendered frame is converted to RGB for the renderer, and only
  the pixels the renderer changed are converted back and written into the decoded frame
  (:mod:`engine.pipeline.splice`): every other sample is the decoder's, bit for bit.
- **Timing:** every frame is written with its source pts in the source time base: CFR, 29.97 and VFR
  keep each frame's time exactly; nothing is dropped or duplicated.
- **Rotation: the coded orientation is kept and the display rotation is written as a tag**, as in the
  source. Pass-through frames then need no turning, and the file displays as the source does. The
  renderer still sees displayed (upright) frames; its changes are turned back before the splice.
- **Size, pixel format, colour:** the source's coded size and pixel format where the encoder supports
  it (so 4:4:4, 4:2:2 and 10-bit stay so; an odd-sized 4:2:0 source is written 4:4:4 to keep its exact
  size); colour range, matrix, primaries, transfer and sample aspect ratio are copied from the source.
- **Never half-written:** the file is written beside the target under a temporary name and renamed
  over it only when complete (:func:`engine.media.atomic_output`). Cancel, Ctrl-C, errors and a full
  disk delete the temporary file and leave an earlier file at the target untouched; a crash leaves a
  ``.NAME.partial-XXXX.EXT`` file that :func:`engine.media.cleanup_stale_partials` removes (the export
  calls it on the target folder before it starts).
- **Audio:** float32 PCM tracks (:class:`engine.media.AudioTrack`, already mixed; ``samples`` may be
  an ``np.memmap`` to keep long mixes out of memory) are encoded to AAC chunk by chunk, interleaved
  with the video, each tagged with its language; a dub shorter than the video is padded with silence,
  a longer one is cut at the video's end.
- **Languages:** :func:`export_languages` writes one file per language (the video is rendered and
  encoded once; the other files copy its video stream and add their own audio) or one file with one
  tagged audio track per language.

Also here: :class:`TerminalProgress`, a progress bar with ETA on stderr (or JSON lines) for the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Literal

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np

from engine.errors import Cancelled, LipdubError, MediaError, OutputError
from engine.media import (
    AudioTrack,
    MediaInfo,
    VideoInfo,
    atomic_output,
    cleanup_stale_partials,
    probe,
)
from engine.media._open import media_error, open_input
from engine.media.writer import add_aac_stream
from engine.pipeline.splice import PLANAR_YUV, rgb_conversion_args, splice_rgb
from engine.runtime.jobs import CancelToken, Progress, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.memory import release_free_memory

log = logging.getLogger("lipdub.pipeline.export")

FrameRenderer = Callable[[int, np.ndarray], np.ndarray]
"""``renderer(index, frame) -> frame``: ``frame`` is (H, W, 3) uint8 in displayed orientation (RGB, or
BGR with ``renderer_pixel_format="bgr24"``), read-only; return a new array, or ``frame`` itself when
there is nothing to change."""

LanguageMode = Literal["file_per_language", "one_file_multi_track"]

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_AUDIO_LEAD_S = 0.5  # audio is muxed this far ahead of the video, so players find both close together


@dataclass
class ExportSettings:
    """How to encode. ``from_render_settings`` maps a project's :class:`RenderSettings`."""

    codec: str = "libx264"
    preset: str = "veryfast"
    crf: float = 18
    pix_fmt: str | None = None
    """None: the source's pixel format when the encoder supports it, else yuv420p."""
    audio_bitrate_kbps: int = 192
    audio_sample_rate: int | None = 48000
    """Every audio track is resampled to this rate (None: each keeps its own)."""
    faststart: bool = True
    """MP4/MOV: put the index at the front so players and browsers start at once (costs a final copy)."""
    threads: int = 0
    """Encoder threads (0: the encoder decides)."""
    decoder_threads: bool = True
    frames_in_flight: int = 6
    """Queue length between stages; the frames held at once are about three times this."""
    renderer_pixel_format: Literal["rgb24", "bgr24"] = "rgb24"
    codec_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_render_settings(cls, render: Any) -> ExportSettings:
        return cls(
            codec=render.codec,
            preset=render.preset,
            crf=render.crf,
            audio_bitrate_kbps=render.audio_bitrate_kbps,
        )


@dataclass
class ExportResult:
    path: Path
    frames: int
    rendered: int
    duration_s: float
    elapsed_s: float
    audio_languages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pix_fmt: str = ""
    copied_video_from: Path | None = None
    """Set when the video stream was copied from another export (file-per-language mode)."""

    @property
    def passed_through(self) -> int:
        return self.frames - self.rendered

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "frames": self.frames,
            "rendered": self.rendered,
            "passed_through": self.passed_through,
            "duration_s": round(self.duration_s, 6),
            "elapsed_s": round(self.elapsed_s, 3),
            "fps": round(self.fps, 2),
            "audio_languages": self.audio_languages,
            "pix_fmt": self.pix_fmt,
            "warnings": self.warnings,
        }


# ------------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------------


def export_video(
    source: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    frame_renderer: FrameRenderer | None = None,
    needs_render: Callable[[int], bool] | Collection[int] | None = None,
    audio_tracks: Sequence[AudioTrack] = (),
    settings: ExportSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    media_info: MediaInfo | None = None,
) -> ExportResult:
    """Export ``source`` to ``out_path`` with ``frame_renderer`` applied and ``audio_tracks`` muxed.

    ``needs_render`` (a predicate or a set of frame indices) names the frames worth offering to the
    renderer; the others are passed through without conversion. None: every frame is offered.
    The source's own audio is not copied: give it as a track when it should be kept.
    Raises MediaError (bad source), OutputError (cannot write), Cancelled; in every such case nothing
    is left at ``out_path`` beyond what was there before.
    """
    settings = settings or ExportSettings()
    out = Path(out_path).absolute()
    mi = media_info or probe(source)
    info = mi.require_video()
    src = Path(mi.path)
    _check_target(src, out)
    with contextlib.suppress(OSError):
        cleanup_stale_partials(out.parent)
    started = time.monotonic()
    with atomic_output(out) as tmp:
        run = _ExportRun(mi, info, tmp, out, frame_renderer, needs_render, audio_tracks, settings, progress, cancel)
        run.execute()
    result = ExportResult(
        path=out,
        frames=run.frames_out,
        rendered=run.frames_rendered,
        duration_s=run.video_end_s - run.video_start_s,
        elapsed_s=time.monotonic() - started,
        audio_languages=[t.language for t in audio_tracks],
        warnings=run.warnings,
        pix_fmt=run.pix_fmt,
    )
    log.info("exported %s: %d frames (%d rendered) in %.1f s", out, result.frames, result.rendered, result.elapsed_s)
    return result


def language_output_path(out_path: str | os.PathLike[str], language: str) -> Path:
    """``film.mp4`` + ``de`` -> ``film.de.mp4`` (the file-per-language naming)."""
    p = Path(out_path)
    return p.with_name(f"{p.stem}.{language}{p.suffix}")


def export_languages(
    source: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    audio_by_language: Mapping[str, AudioTrack | Sequence[AudioTrack]],
    *,
    mode: LanguageMode = "file_per_language",
    frame_renderer: FrameRenderer | None = None,
    needs_render: Callable[[int], bool] | Collection[int] | None = None,
    settings: ExportSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[ExportResult]:
    """Export one video with several languages' audio.

    ``one_file_multi_track``: one file at ``out_path`` with every language's tracks, each tagged (the
    first language is the default track). ``file_per_language``: ``film.de.mp4``, ``film.fr.mp4``...
    (:func:`language_output_path`); the video is rendered and encoded once, the other files copy that
    video stream bit for bit. Cancel or failure removes the partial file in progress; files already
    finished stay (each one is complete).
    """
    if not audio_by_language:
        raise ValueError("no languages to export")
    tracks_by_lang = {
        lang: [
            t if t.language not in ("", "und") else dataclasses.replace(t, language=lang)
            for t in ([tracks] if isinstance(tracks, AudioTrack) else tracks)
        ]
        for lang, tracks in audio_by_language.items()
    }
    if mode == "one_file_multi_track":
        all_tracks = [t for tracks in tracks_by_lang.values() for t in tracks]
        return [
            export_video(
                source, out_path, frame_renderer=frame_renderer, needs_render=needs_render,
                audio_tracks=all_tracks, settings=settings, progress=progress, cancel=cancel,
            )
        ]
    if mode != "file_per_language":
        raise ValueError(f"unknown language mode {mode!r}")
    langs = list(tracks_by_lang)
    first = export_video(
        source, language_output_path(out_path, langs[0]), frame_renderer=frame_renderer,
        needs_render=needs_render, audio_tracks=tracks_by_lang[langs[0]], settings=settings,
        progress=progress, cancel=cancel,
    )
    results = [first]
    for lang in langs[1:]:
        check_cancel(cancel)
        results.append(
            remux_with_audio(first.path, language_output_path(out_path, lang), tracks_by_lang[lang],
                             settings=settings, progress=progress, cancel=cancel)
        )
    return results


_MIX_MODES = {"dub_only": "dub_only", "dub_plus_original": "dub_and_original", "original_ducked": "original_ducked"}


def project_languages(project: Any) -> list[str]:
    """The languages a project exports (:meth:`engine.project.Project.export_languages`)."""
    return list(project.export_languages())


def export_project(
    project: Any,
    out_path: str | os.PathLike[str],
    *,
    languages: Sequence[str] | None = None,
    language_mode: LanguageMode | None = None,
    audio_mode: str | None = None,
    settings: ExportSettings | None = None,
    frame_renderer: FrameRenderer | None = None,
    needs_render: Callable[[int], bool] | Collection[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[ExportResult]:
    """Export an :class:`engine.project.Project`: mix each language's dub tracks (engine.audio.mix, at
    their offsets, gains and trims; with the original audio per ``audio_mode``), then stream the video
    through ``frame_renderer`` (from the lip-sync engine) into one file per language or one file with a
    track per language. ``languages``/``language_mode``/``audio_mode`` default to the project's own
    (its render settings; the languages of assigned tracks). One language gives one file at
    ``out_path`` itself. Raises ProjectError for a project that cannot be exported as it is (no video,
    missing media, no dub tracks, an unknown language), MediaError/OutputError/Cancelled as
    :func:`export_video`.
    """
    from engine.audio.mix import DubInput, MixMode, MixSettings, mix_output
    from engine.audio.tracks import load_track
    from engine.errors import ProjectError
    from engine.project.store import missing_media

    if project.video is None:
        raise ProjectError("the project has no video", hint="add a video first")
    missing = missing_media(project)
    if missing:
        names = ", ".join(str(m) for m in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ProjectError(f"media files are missing: {names}", hint="relink them (the app offers to) and save")
    available = project_languages(project)
    if not available:
        raise ProjectError("the project has no dub tracks to export", hint="add a dubbed audio track")
    langs = list(languages) if languages else available
    unknown = [lang for lang in langs if lang not in available]
    if unknown:
        raise ProjectError(f"no dub track in {', '.join(unknown)}; the project has {', '.join(available)}")
    render = project.render
    settings = settings or ExportSettings.from_render_settings(render)
    mode_name = _MIX_MODES.get(audio_mode or render.audio_mode)
    if mode_name is None:
        raise ProjectError(f"unknown audio mode {audio_mode!r}; use {', '.join(_MIX_MODES)}")
    mix_mode = MixMode(mode_name)
    source = Path(project.video.path)
    mi = probe(source)
    info = mi.require_video()
    duration = _video_end(info) - float(info.frame_times[0])
    original_offset = (mi.audio[0].start_time - float(info.frame_times[0])) if mi.audio else 0.0
    assigned = {a.track_id for a in project.assignments}
    audio_by_language: dict[str, list[AudioTrack]] = {}
    mix_warnings: dict[str, list[str]] = {}
    for lang in langs:
        check_cancel(cancel)
        tracks = [t for t in project.tracks if t.language == lang and (t.id in assigned or not assigned)]
        dubs = [DubInput(load_track(t.path, cancel=cancel), t, t.display_name) for t in tracks]
        mix = mix_output(
            dubs, duration, original=source if mix_mode is not MixMode.DUB_ONLY and mi.audio else None,
            settings=MixSettings(mode=mix_mode, duck_db=float(render.duck_db)),
            original_offset_s=original_offset, cancel=cancel,
        )
        audio_by_language[lang] = [
            AudioTrack(t.samples, mix.sample_rate, language=lang, title=f"{t.label} ({lang})" if t.label else lang,
                       default=(k == 0))
            for k, t in enumerate(mix.tracks)
        ]
        mix_warnings[lang] = [f"{lang} mix: {w}" for w in mix.warnings]
        release_free_memory()  # the decoded dubs, before the video's frames are in flight
        for w in mix_warnings[lang]:
            log.warning("%s", w)
    mode = language_mode or render.language_mode
    if len(langs) == 1:
        mode = "one_file_multi_track"  # one language: one file at the chosen name
    results = export_languages(
        source, out_path, audio_by_language, mode=mode, frame_renderer=frame_renderer,
        needs_render=needs_render, settings=settings, progress=progress, cancel=cancel,
    )
    for r in results:
        # Each file carries the mix warnings of the languages it holds, ahead of the video's own.
        r.warnings[:0] = [w for lang in dict.fromkeys(r.audio_languages or langs) for w in mix_warnings.get(lang, [])]
    return results


def remux_with_audio(
    video_file: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    audio_tracks: Sequence[AudioTrack],
    *,
    settings: ExportSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Copy the video stream of ``video_file`` (no re-encode) into ``out_path`` with new audio tracks."""
    settings = settings or ExportSettings()
    src = Path(video_file)
    out = Path(out_path).absolute()
    _check_target(src, out)
    mi = probe(src)
    info = mi.require_video()
    started = time.monotonic()
    reporter = ProgressReporter(progress, "mux", info.frame_count)
    frames = 0
    with atomic_output(out) as tmp:
        _, inp = open_input(src)
        try:
            container = _open_output(tmp, out, settings)
            try:
                vin = inp.streams.video[0]
                vout = container.add_stream_from_template(vin)
                audio = _AudioEncoders(container, audio_tracks, settings, info.frame_times[0], _video_end(info))
                for packet in inp.demux(vin):
                    check_cancel(cancel)
                    if packet.dts is None and packet.pts is None:
                        continue
                    tb = vin.time_base
                    t = float(packet.pts * tb) if packet.pts is not None and tb is not None else None
                    packet.stream = vout
                    _mux(container, packet, out)
                    frames += 1
                    if t is not None:
                        audio.encode_until(t + _AUDIO_LEAD_S, out)
                    reporter.update(frames)
                audio.finish(out)
                _close_output(container, out)
            except BaseException:
                _abandon(container, tmp)
                raise
        finally:
            inp.close()
    reporter.finish()
    return ExportResult(
        path=out, frames=frames, rendered=0, duration_s=_video_end(info) - float(info.frame_times[0]),
        elapsed_s=time.monotonic() - started, audio_languages=[t.language for t in audio_tracks],
        pix_fmt=info.pix_fmt, copied_video_from=src,
    )


# ------------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------------


class _End:
    """Queue sentinel: the stream ended."""


_END = _End()


@dataclass
class _Failure:
    exc: BaseException


class _ExportRun:
    """One export: owns the threads, the queues and the output container."""

    def __init__(
        self,
        mi: MediaInfo,
        info: VideoInfo,
        tmp: Path,
        target: Path,
        renderer: FrameRenderer | None,
        needs_render: Callable[[int], bool] | Collection[int] | None,
        audio_tracks: Sequence[AudioTrack],
        settings: ExportSettings,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
    ) -> None:
        self.mi, self.info, self.tmp, self.target = mi, info, tmp, target
        self.renderer = renderer
        if needs_render is None or callable(needs_render):
            self.needs_render: Callable[[int], bool] | None = needs_render  # type: ignore[assignment]
        else:
            wanted = needs_render
            self.needs_render = lambda i: i in wanted
        self.audio_tracks = list(audio_tracks)
        self.settings = settings
        self.progress = progress
        self.cancel = cancel
        self.stop = threading.Event()
        depth = max(1, int(settings.frames_in_flight))
        self.q_decoded: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.q_encode: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.encode_error: BaseException | None = None
        self.frames_out = 0
        self.frames_rendered = 0
        self.frames_missing = 0
        self.warnings: list[str] = list(info.warnings)
        self.video_start_s = float(info.frame_times[0])
        self.video_end_s = _video_end(info)
        self.pix_fmt = _output_pix_fmt(info, settings)
        self._rot_k = -(info.rotation // 90) % 4
        self._converter: Any = None

    # -- orchestration ---------------------------------------------------------------------------

    def execute(self) -> None:
        container = _open_output(self.tmp, self.target, self.settings)
        decoder = threading.Thread(target=self._decode_loop, name="export-decode", daemon=True)
        encoder: threading.Thread | None = None
        try:
            self.vstream = self._add_video_stream(container)
            self.audio = _AudioEncoders(container, self.audio_tracks, self.settings, self.video_start_s,
                                        self.video_end_s)
            self.container = container
            encoder = threading.Thread(target=self._encode_loop, name="export-encode", daemon=True)
            decoder.start()
            encoder.start()
            try:
                self._render_loop()
                self._put(self.q_encode, _END)
            except _Stopped:
                if self.encode_error is None:
                    raise
            encoder.join()
            if self.encode_error is not None:
                raise self.encode_error
            _close_output(container, self.target)
        except BaseException:
            self.stop.set()
            _drain(self.q_decoded)
            _drain(self.q_encode)
            for t in (decoder, encoder):
                if t is not None and t.is_alive():
                    t.join(timeout=30)
            _abandon(container, self.tmp)
            raise
        finally:
            self.stop.set()
            if decoder.is_alive():
                _drain(self.q_decoded)
                decoder.join(timeout=30)
        if self.frames_missing:
            self.warnings.append(
                f"{self.frames_missing} of {self.info.frame_count} frames could not be decoded and were left out"
            )
        if self.info.truncated:
            self.warnings.append("the source video is truncated: only the frames present were exported")

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        """Put, waiting while the queue is full; gives up when the run is stopping."""
        while True:
            if self.encode_error is not None and q is self.q_encode:
                raise self.encode_error
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.encode_error is not None and q is self.q_encode:
                    raise self.encode_error from None
                if self.stop.is_set():
                    raise _Stopped() from None
                if q is self.q_encode:
                    check_cancel(self.cancel)

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.encode_error is not None and q is self.q_decoded:
                    raise self.encode_error from None
                if self.stop.is_set():
                    raise _Stopped() from None
                if q is self.q_decoded:
                    check_cancel(self.cancel)

    # -- stage 1: decode (own thread) ------------------------------------------------------------

    def _decode_loop(self) -> None:
        try:
            for item in self._decoded_frames():
                self._put(self.q_decoded, item)
            self._put(self.q_decoded, _END)
        except _Stopped:
            pass
        except BaseException as exc:
            with contextlib.suppress(_Stopped):
                self._put(self.q_decoded, _Failure(exc))

    def _decoded_frames(self) -> Iterator[tuple[int, av.video.frame.VideoFrame]]:
        path, container = open_input(self.mi.path)
        try:
            stream: Any = next(
                (s for s in container.streams if s.index == self.info.index), container.streams.video[0]
            )
            if self.settings.decoder_threads:
                stream.thread_type = "AUTO"
            pts_table = self.info.pts
            n = len(pts_table)
            expected = 0
            errors = 0
            packets = container.demux(stream)
            while True:
                if self.stop.is_set():
                    return
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # damaged container: keep what was decoded
                    self.warnings.append(f"the video ends early: {exc}")
                    break
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    errors += 1
                    if errors <= 3:
                        log.warning("%s: skipping an undecodable video packet: %s", path, exc)
                    continue
                for frame in frames:
                    assert isinstance(frame, av.video.frame.VideoFrame)
                    ts = frame.pts if frame.pts is not None else frame.dts
                    if ts is None:
                        continue
                    i = int(np.searchsorted(pts_table, ts))
                    if i >= n or int(pts_table[i]) != ts or i < expected:
                        continue
                    self.frames_missing += i - expected
                    expected = i + 1
                    yield i, frame
            self.frames_missing += n - expected
        except av.FFmpegError as exc:
            raise media_error(path, exc, "decoding the video") from exc
        finally:
            container.close()

    # -- stage 2: render (the caller's thread) ---------------------------------------------------

    def _render_loop(self) -> None:
        reporter = ProgressReporter(self.progress, "export", self.info.frame_count)
        done = 0
        while True:
            check_cancel(self.cancel)
            item = self._get(self.q_decoded)
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            index, frame = item
            out = self._render(index, frame)
            self._put(self.q_encode, out)
            done += 1
            reporter.update(index + 1)
        reporter.finish()
        self.frames_out = done

    def _render(self, index: int, frame: av.video.frame.VideoFrame) -> av.video.frame.VideoFrame:
        if self.renderer is None or (self.needs_render is not None and not self.needs_render(index)):
            return self._pass_through(frame)
        before = self._to_array(frame)
        before.flags.writeable = False
        after = self.renderer(index, before)
        if after is None or after is before:
            return self._pass_through(frame)
        if not isinstance(after, np.ndarray) or after.shape != before.shape or after.dtype != np.uint8:
            got = f"{getattr(after, 'shape', type(after).__name__)} {getattr(after, 'dtype', '')}".strip()
            raise ValueError(f"the renderer returned {got} for frame {index}; expected {before.shape} uint8")
        fmt = self.settings.renderer_pixel_format
        if frame.format.name in PLANAR_YUV:
            spliced = splice_rgb(frame, before, after, rotation_k=self._rot_k, rgb_format=fmt)
            if spliced is None:
                return self._pass_through(frame)
            self.frames_rendered += 1
            return self._pass_through(spliced)
        # Other layouts (RGB, NV12, grey...): convert the whole rendered frame.
        self.frames_rendered += 1
        upright = np.ascontiguousarray(np.rot90(after, -self._rot_k)) if self._rot_k else after
        vf = av.video.frame.VideoFrame.from_ndarray(np.ascontiguousarray(upright), format=fmt)
        conv = rgb_conversion_args(frame)
        vf = vf.reformat(format=self.pix_fmt, dst_colorspace=conv["colorspace"], dst_color_range=conv["color_range"])
        vf.pts, vf.time_base = frame.pts, frame.time_base
        return self._tag(vf, frame)

    def _to_array(self, frame: av.video.frame.VideoFrame) -> np.ndarray:
        """The frame as the reader gives it: same colour conversion, rotation applied."""
        if self._converter is None:
            from engine.media import VideoReader

            self._converter = VideoReader(
                self.mi.path, pixel_format=self.settings.renderer_pixel_format, cache_frames=0, media_info=self.mi
            )
        return self._converter._to_array(frame)  # type: ignore[no-any-return]

    def _pass_through(self, frame: av.video.frame.VideoFrame) -> av.video.frame.VideoFrame:
        if frame.format.name != self.pix_fmt:
            conv = rgb_conversion_args(frame) if not frame.format.name.startswith(("yuv", "nv")) else None
            vf = frame.reformat(
                format=self.pix_fmt,
                dst_colorspace=conv["colorspace"] if conv else None,
                dst_color_range=conv["color_range"] if conv else None,
            )
            vf.pts, vf.time_base = frame.pts, frame.time_base
            return self._tag(vf, frame)
        return frame

    @staticmethod
    def _tag(vf: av.video.frame.VideoFrame, src: av.video.frame.VideoFrame) -> av.video.frame.VideoFrame:
        with contextlib.suppress(AttributeError, ValueError, TypeError):
            vf.colorspace, vf.color_range = src.colorspace, src.color_range
        return vf

    # -- stage 3: encode + mux (own thread) ------------------------------------------------------

    def _add_video_stream(self, container: av.container.OutputContainer) -> av.video.stream.VideoStream:
        info, s = self.info, self.settings
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps and math.isfinite(info.fps) else None
        vs = container.add_stream(s.codec, rate=rate)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height = info.coded_width, info.coded_height
        vs.pix_fmt = self.pix_fmt
        vs.time_base = info.time_base
        vs.codec_context.time_base = info.time_base
        c = info.color
        cc = vs.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = c.range, c.space, c.primaries, c.trc
        if info.sample_aspect_ratio:
            with contextlib.suppress(AttributeError, ValueError, TypeError):
                cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            vs.set_display_rotation(-info.rotation)  # the display matrix turns counter-clockwise
        vs.thread_count = s.threads
        opts = {"preset": s.preset}
        if s.codec in ("libx264", "libx265"):
            opts["crf"] = f"{s.crf:g}"
        if s.codec == "libx265":
            opts["x265-params"] = "log-level=error"
        opts.update(s.codec_options)
        vs.options = opts  # type: ignore[assignment]
        if s.codec == "libx265":
            vs.codec_tag = "hvc1"
        return vs

    def _encode_loop(self) -> None:
        try:
            while True:
                item = self._get(self.q_encode)
                if item is _END:
                    break
                frame: av.video.frame.VideoFrame = item
                frame.pict_type = av.video.frame.PictureType.NONE  # never force the decoder's frame types
                _mux(self.container, self.vstream.encode(frame), self.target)
                if frame.pts is not None:
                    self.audio.encode_until(float(frame.pts * self.info.time_base) + _AUDIO_LEAD_S, self.target)
            _mux(self.container, self.vstream.encode(None), self.target)
            self.audio.finish(self.target)
        except _Stopped:
            pass
        except BaseException as exc:
            self.encode_error = exc
            self.stop.set()


class _Stopped(Exception):
    """Internal: a stage noticed that the run is stopping."""


def _drain(q: queue.Queue[Any]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            q.get_nowait()


# ------------------------------------------------------------------------------------------------
# Audio
# ------------------------------------------------------------------------------------------------


class _AudioEncoder:
    """One AAC track, encoded in chunks from float PCM on the video timeline."""

    CHUNK = 4096

    def __init__(self, container: av.container.OutputContainer, track: AudioTrack, settings: ExportSettings,
                 video_start_s: float, video_end_s: float, default: bool) -> None:
        samples = track.samples
        if samples.ndim == 1:
            samples = samples.reshape(-1, 1)
        if samples.ndim != 2 or not 1 <= samples.shape[1] <= 8:
            raise ValueError(f"audio samples must have shape (n, channels <= 8), not {track.samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"audio samples must be float PCM in [-1, 1], not {samples.dtype}")
        from engine.media.audio import layout_for

        self.samples = samples
        self.in_rate = int(track.sample_rate)
        self.out_rate = int(settings.audio_sample_rate or track.sample_rate)
        self.layout = layout_for(samples.shape[1])
        bit_rate = int(settings.audio_bitrate_kbps) * 1000 * max(1, samples.shape[1] // 2)
        self.stream = add_aac_stream(container, self.out_rate, self.layout, bit_rate, track.language, track.title,
                                     default)
        self.container = container
        # Output sample 0 plays with the first video frame; track.start_time is on the same timeline.
        self.t0 = video_start_s
        self.total = max(0, round((video_end_s - video_start_s) * self.in_rate))  # samples to write
        self.shift = round(float(track.start_time) * self.in_rate)  # where samples[0] falls
        self.pos = 0  # next output sample (at the input rate)
        self.pts0 = round(video_start_s * self.in_rate)  # output sample 0 plays with the first frame

    def _chunk(self, start: int, stop: int) -> np.ndarray:
        """Output samples [start, stop): the track where it has samples, silence elsewhere."""
        out = np.zeros((stop - start, self.samples.shape[1]), dtype=np.float32)
        a, b = max(start, self.shift), min(stop, self.shift + len(self.samples))
        if b > a:
            out[a - start : b - start] = self.samples[a - self.shift : b - self.shift]
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def encode_until(self, t: float | None, target: Path) -> None:
        end = self.total if t is None else min(self.total, round((t - self.t0) * self.in_rate))
        while self.pos < end and (t is None or end - self.pos >= self.CHUNK or end == self.total):
            stop = min(self.pos + self.CHUNK, end)
            planar = np.ascontiguousarray(self._chunk(self.pos, stop).T)
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self.layout)
            frame.sample_rate = self.in_rate
            frame.pts = self.pts0 + self.pos
            frame.time_base = Fraction(1, self.in_rate)
            _mux(self.container, self.stream.encode(frame), target)
            self.pos = stop

    def finish(self, target: Path) -> None:
        self.encode_until(None, target)
        _mux(self.container, self.stream.encode(None), target)


class _AudioEncoders:
    def __init__(self, container: av.container.OutputContainer, tracks: Sequence[AudioTrack],
                 settings: ExportSettings, video_start_s: float, video_end_s: float) -> None:
        any_default = any(t.default for t in tracks)
        self.encoders = [
            _AudioEncoder(container, t, settings, video_start_s, video_end_s, t.default or (not any_default and k == 0))
            for k, t in enumerate(tracks)
        ]

    def encode_until(self, t: float, target: Path) -> None:
        for e in self.encoders:
            e.encode_until(t, target)

    def finish(self, target: Path) -> None:
        for e in self.encoders:
            e.finish(target)


# ------------------------------------------------------------------------------------------------
# Output helpers
# ------------------------------------------------------------------------------------------------


def _check_target(source: Path, out: Path) -> None:
    if out.suffix.lower() not in _CONTAINERS:
        raise OutputError(
            f"cannot write a {out.suffix or 'suffix-less'} file", out, "name the output .mp4, .mov or .mkv"
        )
    with contextlib.suppress(OSError):
        if out.exists() and os.path.samefile(out, source):
            raise OutputError("is the source video itself", out, "choose another output name")


def _open_output(tmp: Path, target: Path, settings: ExportSettings) -> av.container.OutputContainer:
    fmt = _CONTAINERS[target.suffix.lower()]
    options = {"movflags": "+faststart"} if settings.faststart and fmt in ("mp4", "mov") else {}
    try:
        return av.open(str(tmp), mode="w", format=fmt, options=options)
    except (OSError, av.FFmpegError) as exc:
        raise _output_error(target, exc) from exc


def _output_error(target: Path, exc: BaseException) -> LipdubError:
    from engine.media.writer import _output_error as describe

    if isinstance(exc, OSError) and exc.errno is not None:
        return describe(target, exc)
    return OutputError(f"cannot be written: {exc}", target)


def _mux(container: av.container.OutputContainer, packets: Any, target: Path) -> None:
    try:
        container.mux(packets)
    except OSError as exc:
        raise _output_error(target, exc) from exc


def _close_output(container: av.container.OutputContainer, target: Path) -> None:
    try:
        container.close()
    except OSError as exc:
        raise _output_error(target, exc) from exc


def _abandon(container: av.container.OutputContainer, tmp: Path) -> None:
    """Stop writing: remove the temporary file first (so finishing the container cannot grow it, and a
    faststart rewrite finds nothing to copy), then close the container quietly."""
    with contextlib.suppress(OSError):
        tmp.unlink()
    with contextlib.suppress(Exception):
        container.close()
    with contextlib.suppress(OSError):
        tmp.unlink()


def _output_pix_fmt(info: VideoInfo, settings: ExportSettings) -> str:
    if settings.pix_fmt:
        return settings.pix_fmt
    try:
        supported = {f.name for f in av.codec.Codec(settings.codec, "w").video_formats or ()}
    except Exception as exc:
        raise OutputError(f"the video encoder {settings.codec!r} is not available: {exc}") from exc
    fmt = info.pix_fmt
    if fmt not in supported:
        fmt = "yuv420p" if "yuv420p" in supported else next(iter(sorted(supported)))
    layout = PLANAR_YUV.get(fmt)
    if layout and (info.coded_width % layout[0] or info.coded_height % layout[1]):
        # An odd size cannot be subsampled: keep the exact size with full-resolution chroma.
        fmt = "yuv444p10le" if layout[2] is np.uint16 else "yuv444p"
    return fmt


def _video_end(info: VideoInfo) -> float:
    """When the last frame stops showing: its time plus a typical frame duration."""
    return float(info.frame_times[-1]) + float(info.frame_duration or 0.0)


# ------------------------------------------------------------------------------------------------
# Terminal progress for the CLI
# ------------------------------------------------------------------------------------------------


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class TerminalProgress:
    """A progress callback that draws ``export [#####.....]  45%  1234/2730  41.2 fps  ETA 00:36``
    on stderr, or with ``json_lines`` prints one JSON object per report::

        {"event": "progress", "stage": "export", "done": 1234, "total": 2730, "fraction": 0.452,
         "fps": 41.2, "eta_s": 36.3, "message": ""}

    On a terminal the bar is redrawn in place; elsewhere (a log file, a pipe) a plain line is printed
    every 10 %. Call :meth:`close` at the end (ends the line); :meth:`event` prints other JSON events.
    """

    def __init__(self, stream: IO[str] | None = None, json_lines: bool = False, width: int = 30,
                 min_interval_s: float = 0.25) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.json_lines = json_lines
        self.width = width
        self.min_interval_s = min_interval_s
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage: str | None = None
        self._stage_start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._line_open = False

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage != self._stage:
            self._end_line()
            self._stage, self._stage_start, self._last_decile = p.stage, now, -1
        finished = p.total > 0 and p.done >= p.total
        elapsed = now - self._stage_start
        rate = p.done / elapsed if elapsed > 0 and p.done > 0 else None
        if self.json_lines:
            if not finished and now - self._last_draw < self.min_interval_s:
                return
            self._last_draw = now
            self.event("progress", stage=p.stage, done=p.done, total=p.total, fraction=round(p.fraction, 4),
                       fps=round(rate, 2) if rate else None,
                       eta_s=round(p.eta_s, 1) if p.eta_s is not None else None, message=p.message)
            return
        if self.is_tty:
            if not finished and now - self._last_draw < self.min_interval_s:
                return
            self._last_draw = now
            self.stream.write("\r" + self.render_line(p, rate) + "\x1b[K")
            self._line_open = True
            if finished:
                self._end_line()
        else:
            decile = int(p.fraction * 10)
            if decile != self._last_decile or finished:
                self._last_decile = decile
                self.stream.write(self.render_line(p, rate) + "\n")
        self.stream.flush()

    def render_line(self, p: Progress, rate: float | None = None) -> str:
        filled = round(p.fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        count = f"{int(p.done)}/{int(p.total)}" if p.total else f"{int(p.done)}"
        speed = f"  {rate:5.1f} fps" if rate else ""
        msg = f"  {p.message}" if p.message else ""
        return f"{p.stage} [{bar}] {p.fraction * 100:5.1f}%  {count}{speed}  ETA {format_eta(p.eta_s)}{msg}"

    def event(self, event: str, **fields: Any) -> None:
        """Print one JSON line (json mode) describing ``event`` (e.g. "done" with the result)."""
        if not self.json_lines:
            return
        self.stream.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False

    def close(self) -> None:
        self._end_line()


__all__ = [
    "AudioTrack",
    "Cancelled",
    "ExportResult",
    "ExportSettings",
    "FrameRenderer",
    "MediaError",
    "OutputError",
    "TerminalProgress",
    "export_languages",
    "export_project",
    "export_video",
    "format_eta",
    "language_output_path",
    "project_languages",
    "remux_with_audio",
]
