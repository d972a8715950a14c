"""GUI responsiveness: event-loop latency (how late a 10 ms timer fires) while the app works in the
background. Prints a table: phase, samples, median, 99th percentile and worst lateness in ms.

    QT_QPA_PLATFORM=offscreen python bench/ui.py [--clip PATH] [--dub PATH]

Phases: idle; face analysis of a freshly opened video (empty analysis cache); scrubbing the preview
while the analysis runs; preparing the speaker models for the lip-synced preview after an
assignment; scrubbing the lip-synced preview; a lip-synced export running. Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
INTERVAL_MS = 10


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "video" / "presenter_kim_1080p.mp4")
    parser.add_argument("--dub", type=Path, default=MEDIA / "audio" / "dub_german1.wav")
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--trace-stalls", type=float, default=0.0, metavar="MS",
                        help="print the GUI thread's stack whenever it has not ticked for MS milliseconds")
    args = parser.parse_args()
    if not args.clip.is_file():
        print(f"clip not found: {args.clip}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="lipdub-bench-ui-"))
    os.environ["LIPDUB_CACHE_DIR"] = str(tmp / "cache")  # cold: the analysis really runs
    os.environ["LIPDUB_DATA_DIR"] = str(tmp / "data")

    from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    app = QApplication(sys.argv[:1])
    from app.export_dialog import ExportDialog
    from app.mainwindow import MainWindow
    from app.resources import apply_theme
    from app.settings import AppSettings

    apply_theme(app)
    w = MainWindow(AppSettings())
    w.show_error_dialogs = False
    w.resize(1400, 880)
    w.show()

    samples: dict[str, list[float]] = {}
    phase = ["idle"]
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        late = (now - last[0]) / 1e6 - INTERVAL_MS
        last[0] = now
        samples.setdefault(phase[0], []).append(max(0.0, late))

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(INTERVAL_MS)
    timer.timeout.connect(tick)

    def run_until(cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            app.processEvents()
            time.sleep(0.001)

    def set_phase(name: str) -> None:
        run_until(lambda: False, 0.05)
        phase[0] = name
        last[0] = clock.nsecsElapsed()

    if args.trace_stalls > 0:
        import threading
        import traceback

        gui_ident = threading.get_ident()

        def watchdog() -> None:
            reported = 0
            while timer.isActive() or phase[0] == "idle":
                time.sleep(args.trace_stalls / 4000)
                stalled = (clock.nsecsElapsed() - last[0]) / 1e6
                if stalled > args.trace_stalls and last[0] != reported:
                    reported = last[0]
                    frame = sys._current_frames().get(gui_ident)
                    print(f"--- GUI thread stalled {stalled:.0f} ms in phase {phase[0]!r}:", file=sys.stderr)
                    traceback.print_stack(frame, limit=12, file=sys.stderr)

        threading.Thread(target=watchdog, daemon=True, name="stall-watchdog").start()

    timer.start()
    set_phase("idle")
    run_until(lambda: False, args.idle_s)

    set_phase("open + face analysis")
    t0 = time.monotonic()
    w.open_video(args.clip)
    run_until(lambda: w.session.video is not None, 60)
    run_until(lambda: w.session.analysis is not None or (w.session.analysis_progress is None and "analysis" not in w._jobs), 600)
    analysis_s = time.monotonic() - t0

    # scrub while a second analysis runs (cache cleared by a new cache folder)
    os.environ["LIPDUB_CACHE_DIR"] = str(tmp / "cache2")
    set_phase("scrubbing during analysis")
    w.start_analysis()
    dur = w.session.duration_s
    k = 0
    end = time.monotonic() + 8
    while time.monotonic() < end and "analysis" in w._jobs:
        w.seek((k * 0.37) % max(dur, 0.1))
        k += 1
        run_until(lambda: False, 0.03)
    run_until(lambda: "analysis" not in w._jobs, 600)

    ids = w.add_tracks([args.dub]) if args.dub.is_file() else []
    run_until(lambda: all(w.session.tracks[i].duration_s for i in ids) and not w.busy, 120)
    people = [i.id for i in w.doc.project.identities]
    prepare_s = float("nan")
    if ids and people:
        set_phase("preparing speakers (preview)")
        t0 = time.monotonic()
        w.assign(ids[0], people[0])
        renderer = w.preview_ctl.renderer
        run_until(lambda: renderer.prepared_project is not None
                  or (time.monotonic() - t0 > 2 and "speakers" not in w._jobs), 900)
        prepare_s = time.monotonic() - t0
        set_phase("scrubbing lip-synced preview")
        end = time.monotonic() + 6
        k = 0
        while time.monotonic() < end:
            w.seek((k * 0.29) % max(dur, 0.1))
            k += 1
            run_until(lambda: False, 0.03)
        run_until(lambda: not w.preview_ctl.busy, 60)
    set_phase("export running")
    dlg = ExportDialog(w.doc, w.pool, w)
    dlg.show_error_dialogs = False
    dlg.path_edit.setText(str(tmp / "out.mp4"))
    dlg.show()
    t0 = time.monotonic()
    dlg.export_button.click()
    run_until(lambda: dlg.outcome != "", 900)
    export_s = time.monotonic() - t0
    timer.stop()
    dlg.close()
    w.shutdown()
    w.close()

    info = w.session.video
    print(f"clip: {args.clip.name} ({info.width}x{info.height}, {info.frame_count} frames)" if info else args.clip.name)
    print(f"machine: {os.cpu_count()} CPU cores, offscreen Qt; timer interval {INTERVAL_MS} ms")
    print(f"analysis wall time {analysis_s:.1f} s; speaker preparation {prepare_s:.1f} s; "
          f"export {export_s:.1f} s ({dlg.outcome}); preview frames dropped as stale: {w.preview_ctl.dropped}")
    print()
    print(f"| {'phase':<28} | {'ticks':>6} | {'median ms':>9} | {'p99 ms':>7} | {'max ms':>7} |")
    print(f"|{'-' * 30}|{'-' * 8}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
    for name, values in samples.items():
        print(f"| {name:<28} | {len(values):>6} | {statistics.median(values):>9.2f} | {percentile(values, 99):>7.2f} | {max(values):>7.2f} |")
    sys.stdout.flush()
    # Leave without the interpreter's final garbage collection of Qt objects (it can crash in
    # shiboken at shutdown); every result has been printed.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
