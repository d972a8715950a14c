"""Screenshots of the app's main states, for looking at the UI without a display.

    QT_QPA_PLATFORM=offscreen python -m app.screenshots [OUT_FOLDER]

States: empty; a video of two people analysed; tracks assigned to them (the lip-synced side with
its lip-sync badge); an assignment's lip-sync score in the inspector; the preview (wipe + mouth zoom);
an export running, with each assignment's score. Uses the real clips in ../shared/media (a two-person
video is made once by joining two clips into a temporary file).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))


def two_person_video(out: Path, seconds: float = 4.0, size: int = 512) -> Path:
    """Join the first ``seconds`` of two clips of different people into one 25 fps video."""
    import cv2
    import numpy as np

    from engine.media import AudioTrack
    from engine.media.audio import decode_audio
    from engine.media.reader import VideoReader
    from engine.media.writer import VideoWriter

    clips = [MEDIA / "video" / "hdtf_katiehill.mp4", MEDIA / "video" / "retalking_face_1.mp4"]
    fps = 25
    # each clip's own voice goes with it: the engine learns each speaker from the original audio
    pcm = np.concatenate([decode_audio(c, sample_rate=48000, channels=2).samples[: int(seconds * 48000)] for c in clips])
    with VideoWriter(out, size, size, fps=fps, audio_tracks=[AudioTrack(pcm, 48000, "en")]) as writer:
        k = 0
        for clip in clips:
            with VideoReader(clip) as reader:
                n = min(len(reader), int(seconds * reader.fps))
                for _i, rgb in reader.iter_frames(0, n):
                    writer.write(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), k / fps)
                    k += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0] if argv else ROOT / "build" / "screenshots").absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lipdub-shots-"))
    os.environ.setdefault("LIPDUB_DATA_DIR", str(tmp / "data"))
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    from app.resources import apply_theme

    apply_theme(app)
    from app.mainwindow import MainWindow
    from app.settings import AppSettings

    def pump(cond, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            app.processEvents()
            time.sleep(0.01)
        for _ in range(5):
            app.processEvents()

    def idle() -> bool:
        return not w.busy and not w.preview_ctl.busy

    def shot(name: str, widget=None) -> None:  # type: ignore[no-untyped-def]
        pump(lambda: False, 0.2)
        path = out_dir / f"{name}.png"
        (widget or w).grab().save(str(path))
        print(path)

    w = MainWindow(AppSettings())
    w.show_error_dialogs = False
    w.resize(1440, 900)
    w.show()
    shot("01-empty")

    video = two_person_video(tmp / "two people.mp4")
    w.open_video(video)
    pump(lambda: w.session.video is not None and w.session.analysis is not None and idle(), 300)
    w.seek(1.0)
    pump(idle)
    shot("02-analysed-two-people")

    audio = MEDIA / "audio"
    ids = w.add_tracks([audio / "dub_german1.wav", audio / "dub_french1.wav"])
    pump(lambda: all(w.session.tracks[i].duration_s for i in ids) and idle())
    people = [i.id for i in w.doc.project.identities]
    assigned = []
    if len(people) >= 2:
        assigned = [w.assign(ids[0], people[0], 0.0, 4.0), w.assign(ids[1], people[1], 4.0, 8.0)]
    elif people:
        assigned = [w.assign(ids[0], people[0])]
    w.timeline.canvas.selected = ("track", ids[0])
    w.inspector.show_item("track", ids[0])
    w.seek(5.2)
    pump(idle)
    shot("03a-assignment-preparing")
    t0 = time.monotonic()
    pump(lambda: w.preview_ctl.renderer.prepared_project is not None
         or (time.monotonic() - t0 > 3 and "speakers" not in w._jobs), 600)
    w.seek(5.2)
    pump(idle)
    shot("03b-assignment-lipsynced")

    if assigned and assigned[-1] is not None:
        # the inspector of an assignment, with its predicted lip-sync score
        w._select_from_inspector("assignment", assigned[-1])
        pump(idle)
        shot("03d-assignment-sync-score")

    if people:
        w._select_from_inspector("person", people[0])
        pump(idle)
        shot("03c-person-inspector")

    w.actions_by_name["wipe"].trigger()
    w.actions_by_name["mouth"].setChecked(True)
    w.toggle_mouth_zoom()
    w.preview.wipe_pos = 0.5
    w.seek(1.4)
    pump(idle)
    shot("04-preview-wipe-mouth-zoom")
    w.actions_by_name["side"].trigger()
    w.actions_by_name["mouth"].setChecked(False)
    w.toggle_mouth_zoom()
    pump(idle)
    shot("05-preview-side-by-side")

    # export running: hold the export at about 40% while the dialog is photographed
    import app.export_dialog as export_dialog

    gate = threading.Event()
    real = export_dialog.run_export

    def gated(project, request, progress=None, cancel=None):  # type: ignore[no-untyped-def]
        def report(p):  # type: ignore[no-untyped-def]
            if progress is not None:
                progress(p)
            if p.done > 0.4:
                gate.wait(60)

        return real(project, request, report, cancel)

    export_dialog.run_export = gated  # type: ignore[assignment]
    dlg = export_dialog.ExportDialog(w.doc, w.pool, w)
    dlg.show_error_dialogs = False
    dlg.in_subprocess = False  # the gate above lives in this process
    w._export = dlg  # the predicted lip sync per assignment, as Ctrl+E shows it
    w._update_export_sync()
    dlg.path_edit.setText(str(tmp / "export" / "interview.mp4"))
    (tmp / "export").mkdir()
    dlg.show()
    dlg.export_button.click()
    pump(lambda: dlg.progress.value() > 400, 120)
    pump(lambda: False, 0.6)
    shot("06-export-running", dlg)
    gate.set()
    pump(lambda: dlg.outcome != "", 300)
    shot("07-export-done", dlg)
    export_dialog.run_export = real  # type: ignore[assignment]
    w._export = None
    dlg.close()

    from app.settings import SettingsDialog

    sd = SettingsDialog(w.settings, w.pool, w)
    sd.insight.setChecked(True)
    sd.folder_edit.setText(str(tmp))
    sd.show()
    pump(lambda: not sd.device_status.text().startswith("Checking"), 120)
    shot("08-settings", sd)
    sd.close()

    from app.errors import error_box
    from engine.errors import MediaError

    try:
        raise MediaError("has no video stream", path=MEDIA / "audio" / "dub_german1.wav",
                         hint="open a video file; add audio files as dub tracks instead")
    except MediaError as exc:
        box = error_box(w, exc, "Opening the video")
    box.show()
    shot("09-error-dialog", box)
    box.close()
    w.shutdown()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
