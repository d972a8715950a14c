"""The app opens before the engine's heavy parts load: no torch at import time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_app_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import app.main, app.mainwindow, app.timeline, app.preview, app.inspector, app.workers\n"
        "import app.export_dialog, app.settings, app.playback, app.faces_bridge\n"
        "import app.subprocess_job, app.export_job, app.faces_child, app.media_jobs, app.models\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'ctranslate2', 'onnxruntime') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "", "HOME": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "torch" not in out.stdout.split(","), f"importing the app loaded: {out.stdout.strip()}"
    assert out.stdout.strip() == "", f"importing the app loaded heavy modules: {out.stdout.strip()}"


def test_main_opens_and_closes_the_window(tmp_path: Path) -> None:
    """The entry point starts, shows the window and exits cleanly (as a packaged smoke test would)."""
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "", "HOME": str(tmp_path),
           "LIPDUB_DATA_DIR": str(tmp_path / "data"), "LIPDUB_CACHE_DIR": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = subprocess.run([sys.executable, "-c", "import sys; from app.main import main; sys.exit(main(['--quit-after', '0.5']))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data" / "logs" / "lipdub.log").is_file()
    # a clean exit leaves nothing to restore
    assert not (tmp_path / "data" / "autosave" / "session.json").exists()
