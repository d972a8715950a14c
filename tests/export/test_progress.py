"""The CLI's progress display: a bar with ETA on a terminal, plain lines in a log, JSON lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from engine.pipeline.export import TerminalProgress, export_video, format_eta
from engine.runtime.jobs import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_eta() -> None:
    assert format_eta(None) == "--:--"
    assert format_eta(65.4) == "01:05"
    assert format_eta(3725) == "1:02:05"
    assert format_eta(float("inf")) == "--:--"


def test_bar_on_a_terminal() -> None:
    out = FakeTTY()
    bar = TerminalProgress(out, min_interval_s=0)
    bar(Progress("export", 10, 40, eta_s=12.0))
    bar(Progress("export", 40, 40, eta_s=0.0))
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rexport [")
    assert " 25.0%  10/40" in text and "ETA 00:12" in text
    assert "100.0%  40/40" in text and text.endswith("\n")


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out, min_interval_s=0)
    for done in range(0, 101):
        bar(Progress("export", done, 100))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 10 <= len(lines) <= 12, "one line per 10 %"


def test_json_lines(video_25fps: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    bar = TerminalProgress(out, json_lines=True, min_interval_s=0)
    result = export_video(video_25fps, tmp_path / "o.mp4", progress=bar)
    bar.event("done", **result.to_dict())
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 50 and progress[-1]["fraction"] == 1.0
    assert all(set(e) >= {"stage", "done", "total", "fraction", "eta_s", "fps"} for e in progress)
    assert events[-1]["event"] == "done" and events[-1]["frames"] == 50


def test_json_mode_ignores_events_in_bar_mode() -> None:
    out = io.StringIO()
    TerminalProgress(out).event("done", x=1)
    assert out.getvalue() == ""
