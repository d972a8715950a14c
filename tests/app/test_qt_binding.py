"""A Qt binding that over-releases Python's None/True/False on slot calls or emit() crashes the app
after a few thousand events under CPython 3.11 (PySide6 6.12.0 did). Checked in a child process so a
broken binding fails this test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import sys
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

app = QCoreApplication([])
calls = [0]

def tick():
    calls[0] += 1

timer = QTimer()
timer.setInterval(0)
timer.timeout.connect(tick)
before = sys.getrefcount(None)
timer.start()
for _ in range(3000):
    app.processEvents()
timer.stop()
none_change = sys.getrefcount(None) - before

class Source(QObject):
    sig = Signal(object)

src = Source()
got = []
src.sig.connect(got.append)
t0, f0 = sys.getrefcount(True), sys.getrefcount(False)
for i in range(2000):
    src.sig.emit(i)
print(calls[0], none_change, sys.getrefcount(True) - t0, sys.getrefcount(False) - f0, len(got))
"""


def test_slot_calls_and_emits_keep_reference_counts() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""})
    assert out.returncode == 0, f"the Qt binding crashed: {out.stderr[-500:]}"
    calls, none_change, true_change, false_change, received = (int(x) for x in out.stdout.split())
    assert calls > 1000 and received == 2000
    # a handful of references may come and go; one lost per call means the binding is broken
    assert none_change > -100, f"None lost {-none_change} references over {calls} slot calls"
    assert abs(true_change) < 100 and abs(false_change) < 100
