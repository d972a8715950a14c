"""Headless checks that run *inside* the frozen ``lipdub-studio`` executable.

``lipdub-studio --bundle-check``
    every model file of the default path is found by the engine's own locators, inside the bundle;
    every native library the engine needs loads (OpenCV, PyAV with libx264, dlib, onnxruntime, LiteRT,
    CTranslate2, torch).
``lipdub-studio --smoke-test CLIP [--out DIR]``
    the bundle check, then what a user does, with the app's own main window under
    ``QT_QPA_PLATFORM=offscreen``: open the clip (probe, thumbnails, face analysis in the background),
    wait for the analysis and the preview frame, save the window and the preview as PNGs in ``--out``;
    with ``--dub AUDIO``, add it as a dubbed track, assign it to the first person and wait for the
    preview to re-render; then detect speech and compute the Whisper features of the clip's audio.

The last stdout line is ``SMOKE-RESULT {json}``, read by packaging/smoke_test.py. Exit 0 on success.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _inside_bundle(path: Path) -> bool:
    base = getattr(sys, "_MEIPASS", None)
    if base is None:
        return True  # not frozen: nothing to check
    try:
        Path(path).resolve().relative_to(Path(base).resolve())
    except ValueError:
        return False
    return True


def bundle_check() -> dict[str, Any]:
    """Model files found by the engine inside the bundle, and each native library exercised once."""
    import bundle_manifest

    report: dict[str, Any] = {"frozen": bool(getattr(sys, "frozen", False)), "models": [], "libs": {}}
    for m in bundle_manifest.model_files():
        if not _inside_bundle(m.source):
            raise RuntimeError(f"{m.purpose}: {m.source} is outside the bundle")
        report["models"].append(f"{m.dest_dir}/{m.source.name}")

    import numpy as np

    libs = report["libs"]
    import cv2

    libs["cv2"] = cv2.__version__
    blur = cv2.GaussianBlur(np.zeros((8, 8, 3), np.uint8), (3, 3), 0)
    assert blur.shape == (8, 8, 3)

    import av

    av.codec.Codec("libx264", "w")  # raises when the encoder is missing
    av.codec.Codec("aac", "w")
    libs["av"] = av.__version__

    import dlib

    libs["dlib"] = dlib.__version__

    import onnxruntime

    libs["onnxruntime"] = onnxruntime.__version__

    from ai_edge_litert.interpreter import Interpreter

    from engine.faces import builtin

    Interpreter(model_path=str(builtin.model_path(builtin.DETECTOR_FILE))).allocate_tensors()
    libs["ai_edge_litert"] = "ok"

    import ctranslate2

    libs["ctranslate2"] = ctranslate2.__version__

    import onnx
    from insightface.model_zoo import model_zoo  # the optional insightface face backend

    assert model_zoo is not None
    libs["onnx"] = onnx.__version__

    import torch

    x = torch.ones(4, 4) @ torch.ones(4, 4)
    assert float(x.sum()) == 64.0
    libs["torch"] = torch.__version__
    libs["torch_cuda_available"] = bool(torch.cuda.is_available())
    return report


def _wait(app: Any, predicate: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _audio_check(clip: Path) -> dict[str, Any]:
    """Speech detection (onnxruntime) and Whisper features (the encoder in torch, its weights read from the
    joined model file) on the clip's audio."""
    from engine.audio import detect_speech, whisper_features
    from engine.media.audio import decode_audio

    pcm = decode_audio(clip, sample_rate=16000, channels=1).samples[:, 0]
    vad = detect_speech(pcm)
    feats = whisper_features(pcm, use_cache=False)
    return {"seconds": round(len(pcm) / 16000, 2), "speech_s": round(vad.speech_seconds(), 2),
            "whisper_vectors": int(feats.vectors.shape[0])}


def _assign_and_preview(app: Any, window: Any, dub: Path, out_dir: Path, timeout_s: float) -> dict[str, Any]:
    """Add ``dub`` as a dubbed track, assign it to the first person, wait for the preview to re-render."""
    from app.faces_bridge import identity_key

    identities = window.session.analysis.identities
    if not identities:
        return {"skipped": "no person to assign the track to"}
    (track_id,) = window.add_tracks([dub])
    loaded = _wait(app, lambda: bool(getattr(window.session.tracks.get(track_id), "duration_s", None))
                   or bool(window.errors), 120.0)
    if window.errors:
        action, exc = window.errors[0]
        raise RuntimeError(f"{action}: {exc}")
    if not loaded:
        raise RuntimeError(f"the dubbed track {dub} did not load")
    before = window.preview.pair
    if window.assign(track_id, identity_key(identities[0].id)) is None:
        raise RuntimeError("assigning the track to the person was refused")
    t0 = time.monotonic()
    notes: list[str] = []

    def lip_synced() -> bool:
        pair = window.preview.pair
        if pair is not None and pair is not before and (not notes or notes[-1] != pair.note):
            notes.append(pair.note)
        return bool(window.errors) or (pair is not None and pair is not before and pair.result is not None)

    # the app may first show intermediate states (e.g. while it fits the speaker model)
    _wait(app, lip_synced, timeout_s)
    if window.errors:
        action, exc = window.errors[0]
        raise RuntimeError(f"{action}: {exc}")
    pair = window.preview.pair
    app.processEvents()
    shot = out_dir / "preview_assigned.png"
    window.preview.grab().save(str(shot))
    window.grab().save(str(out_dir / "window_assigned.png"))
    return {"note": pair.note if pair else None, "notes_seen": notes,
            "lip_synced": bool(pair is not None and pair is not before and pair.result is not None),
            "seconds": round(time.monotonic() - t0, 1), "png": str(shot)}


def smoke(clip: Path, out_dir: Path, dub: Path | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Open ``clip`` in the real main window, wait for the analysis and a preview frame, save screenshots."""
    report = bundle_check()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.mainwindow import MainWindow
    from app.resources import style_sheet
    from app.settings import AppSettings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    app.setStyleSheet(style_sheet())
    report["qt_platform"] = QApplication.platformName()

    window = MainWindow(AppSettings.load())
    window.show_error_dialogs = False  # a modal dialog would block a headless run
    window.show()
    t0 = time.monotonic()
    window.open_paths([clip])
    session = window.session

    def settled() -> bool:
        # done, failed, or given up (no analysis running and a status saying why)
        started = session.analysis_progress is not None or session.analysis_status not in ("", "starting")
        return session.analysis is not None or bool(window.errors) or (started and session.analysis_progress is None)

    if not _wait(app, settled, timeout_s):
        raise RuntimeError(f"the face analysis did not finish in {timeout_s:.0f} s ({session.analysis_status})")
    if window.errors:
        action, exc = window.errors[0]
        raise RuntimeError(f"{action}: {exc}")
    if session.analysis is None:
        raise RuntimeError(f"the face analysis did not run: {session.analysis_status}")
    analysed_s = time.monotonic() - t0
    _wait(app, lambda: window.preview.pair is not None, 60.0)
    pair = window.preview.pair
    if pair is None or pair.original.isNull():
        raise RuntimeError("no preview frame was rendered")
    report["analysis"] = {"frames": session.analysis.frame_count, "identities": len(session.analysis.identities),
                          "status": session.analysis_status, "open_to_analysed_s": round(analysed_s, 1)}
    report["preview"] = {"index": pair.index, "width": pair.original.width(), "height": pair.original.height(),
                         "note": pair.note, "mouth_box": pair.mouth_box, "render_ms": round(pair.render_ms, 1)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, widget in (("window.png", window), ("preview.png", window.preview)):
        app.processEvents()
        if not widget.grab().save(str(out_dir / name)):
            raise RuntimeError(f"cannot save {out_dir / name}")
    report["screenshots"] = [str(out_dir / "window.png"), str(out_dir / "preview.png")]
    if dub is not None:
        report["lipsync_preview"] = _assign_and_preview(app, window, dub, out_dir, min(timeout_s, 300.0))
    report["audio"] = _audio_check(clip)
    window.shutdown()
    window.close()
    app.processEvents()
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lipdub-studio")
    parser.add_argument("--bundle-check", action="store_true")
    parser.add_argument("--smoke-test", metavar="CLIP", type=Path)
    parser.add_argument("--dub", type=Path, default=None, help="a dubbed track to assign to the first person")
    parser.add_argument("--out", type=Path, default=Path.cwd() / "smoke-out")
    args = parser.parse_args(argv)
    try:
        report = smoke(args.smoke_test, args.out, args.dub) if args.smoke_test else bundle_check()
    except Exception as exc:
        traceback.print_exc()
        print("SMOKE-RESULT " + json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    report["ok"] = True
    print("SMOKE-RESULT " + json.dumps(report, default=str), flush=True)
    return 0
