"""App test fixtures: isolated QSettings, a main window that is shut down after each test, and a
check that no test leaves a top-level window or a running background thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import shiboken6

pytest.importorskip("pytestqt")

from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtWidgets import QApplication


@pytest.fixture(scope="session", autouse=True)
def _isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("qsettings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))


def _flush_deletes() -> None:
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not isinstance(t, threading._DummyThread) and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaks(qapp: QApplication) -> Iterator[None]:
    """Fail a test that leaves a window open or background work running."""
    from app.workers import WorkerPool

    before_widgets = set(QApplication.topLevelWidgets())
    before_threads = _live_threads()
    yield
    _flush_deletes()
    leaked = [w for w in QApplication.topLevelWidgets() if w not in before_widgets and w.isVisible()]
    names = [f"{type(w).__name__}({w.windowTitle()!r})" for w in leaked]
    for w in leaked:
        w.close()
        w.deleteLater()
    _flush_deletes()
    pools = [p for p in list(WorkerPool.instances) if shiboken6.isValid(p) and shiboken6.isValid(p.pool)]
    busy = [p for p in pools if p.pool.activeThreadCount() > 0]
    for p in busy:
        p.shutdown(5000)
    threads = [t.name for t in _live_threads() - before_threads]
    assert not names, f"test left top-level windows open: {names}"
    assert not busy, "test left background workers running"
    assert not threads, f"test left threads running: {threads}"


@pytest.fixture
def make_window(qtbot):  # type: ignore[no-untyped-def]
    """A factory of main windows (settings not loaded from the user), all shut down after the test."""
    from app.mainwindow import MainWindow
    from app.settings import AppSettings

    windows = []

    def make(**kwargs):  # type: ignore[no-untyped-def]
        w = MainWindow(AppSettings(), **kwargs)
        w.show_error_dialogs = False
        w.doc._autosave_timer.setInterval(50)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.shutdown()
        w.close()
        w.deleteLater()
    _flush_deletes()


@pytest.fixture
def window(make_window):  # type: ignore[no-untyped-def]
    w = make_window()
    w.resize(1100, 700)
    w.show()
    return w


@pytest.fixture(scope="session")
def tone_track(synth_dir: Path) -> Path:
    """A 2 s mono 16 kHz WAV of a tone: loads fast and has a clear waveform."""
    from tests.synth import make_audio

    path, _ = make_audio(synth_dir / "dub_german_tone.wav", codec="pcm_s16le", rate=16000, channels=1, duration=2.0)
    return path
