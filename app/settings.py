"""User settings persisted with QSettings, and the settings dialog.

Settings: face backend (built-in, or an insightface model folder), compute device (auto / CUDA / CPU),
cache folder, recent projects. The dialog says what it found: which insightface models are in the
folder, which device is actually in use (resolved in a worker: that needs torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.workers import WorkerPool

ORG = "LipdubStudio"
APP = "Lipdub Studio"
MAX_RECENT = 8
ENGINE_CHOICES = (
    ("retrieval", "Retrieval (default)"),
    ("net", "Regeneration network (trains per speaker first; slow on CPU)"),
)

def qsettings() -> QSettings:
    return QSettings(ORG, APP)

@dataclass
class AppSettings:
    face_backend: str = "builtin"  # "builtin" | "insightface"
    insightface_folder: str = ""
    device: str = "auto"  # "auto" | "cuda" | "cpu"
    engine: str = "retrieval"  # lip-sync engine for exports: "retrieval" | "net"
    cache_folder: str = ""  # "" = the platform default
    recent: list[str] = field(default_factory=list)

    @classmethod
    def load(cls) -> AppSettings:
        s = qsettings()
        recent = s.value("recent", [])
        if isinstance(recent, str):
            recent = [recent]
        elif not isinstance(recent, (list, tuple)):
            recent = []
        return cls(
            face_backend=str(s.value("faces/backend", "builtin")),
            insightface_folder=str(s.value("faces/insightface_folder", "")),
            device=str(s.value("compute/device", "auto")),
            engine=str(s.value("compute/engine", "retrieval")),
            cache_folder=str(s.value("paths/cache", "")),
            recent=[str(r) for r in (recent or [])],
        )

    def save(self) -> None:
        s = qsettings()
        s.setValue("faces/backend", self.face_backend)
        s.setValue("faces/insightface_folder", self.insightface_folder)
        s.setValue("compute/device", self.device)
        s.setValue("compute/engine", self.engine)
        s.setValue("paths/cache", self.cache_folder)
        s.setValue("recent", list(self.recent))
        s.sync()

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).absolute())
        self.recent = [p] + [r for r in self.recent if r != p]
        del self.recent[MAX_RECENT:]
        self.save()

    def apply_to_environment(self) -> None:
        """The engine reads its folders from the environment (engine.runtime.paths)."""
        if self.cache_folder:
            os.environ["LIPDUB_CACHE_DIR"] = self.cache_folder

# --- insightface model pack ------------------------------------------------------------------------

def insightface_status(folder: str) -> tuple[bool, str]:
    """(usable, what was found) for an insightface model folder, without loading any model.

    insightface loads every ``*.onnx`` in the folder and infers each one's role from its shapes; an empty
    folder fails with a bare assertion, so say here what is there and what is missing.
    """
    if not folder:
        return False, "No folder chosen."
    path = Path(folder)
    if not path.is_dir():
        return False, f"{path} is not a folder."
    onnx = sorted(p.name for p in path.glob("*.onnx"))
    if not onnx:
        return False, f"No .onnx model files in {path}. Choose the folder of an insightface model pack (e.g. buffalo_l)."
    lower = [n.lower() for n in onnx]
    has_det = any(n.startswith(("det_", "scrfd", "retinaface")) for n in lower)
    has_rec = any(n.startswith(("w600k", "glint", "arcface", "ms1m", "rec")) for n in lower)
    found = ", ".join(onnx)
    missing = []
    if not has_det:
        missing.append("a face detector (det_*.onnx)")
    if not has_rec:
        missing.append("a recognition model (w600k_*.onnx)")
    if missing:
        return False, f"Found {found}; missing {' and '.join(missing)}."
    return True, f"Found {len(onnx)} models: {found}."

def engine_pack_report(folder: str) -> object:
    """The engine's own check of an insightface pack (opens the ONNX files; call it in a worker)."""
    from engine.faces import check_insightface_pack

    return check_insightface_pack(folder)


def resolve_device_text(choice: str) -> str:
    """Which device the engine would use for ``choice``; imports torch, so call it in a worker. Caps
    torch's and OpenCV's threads first (the app's first torch import happens here)."""
    from engine.runtime.compute import configure_threads, describe_device, resolve_device

    configure_threads()
    return describe_device(resolve_device(choice))

class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, pool: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.settings = settings
        self._pool = pool
        self._device_request = 0
        self._check_request = 0

        # Face backend
        faces = QGroupBox("Face analysis")
        self.builtin = QRadioButton("Built-in (BlazeFace + face mesh, no download needed)")
        self.insight = QRadioButton("insightface model folder")
        group = QButtonGroup(self)
        group.addButton(self.builtin)
        group.addButton(self.insight)
        self.folder_edit = QLineEdit(settings.insightface_folder)
        self.folder_edit.setPlaceholderText("Folder with det_*.onnx, w600k_*.onnx ...")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_models)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        self.insight_status = QLabel()
        self.insight_status.setWordWrap(True)
        self.insight_status.setObjectName("statusNote")
        fl = QVBoxLayout(faces)
        fl.addWidget(self.builtin)
        fl.addWidget(self.insight)
        fl.addLayout(row)
        fl.addWidget(self.insight_status)
        (self.insight if settings.face_backend == "insightface" else self.builtin).setChecked(True)
        self.folder_edit.textChanged.connect(self._update_insight)
        self.insight.toggled.connect(self._update_insight)

        # Compute device
        compute = QGroupBox("Compute")
        self.device_combo = QComboBox()
        for key, label in (("auto", "Automatic (CUDA when available)"), ("cuda", "CUDA GPU"), ("cpu", "CPU")):
            self.device_combo.addItem(label, key)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device)))
        self.device_status = QLabel("Checking…")
        self.device_status.setObjectName("statusNote")
        self.device_status.setWordWrap(True)
        self.engine_combo = QComboBox()
        for key, label in ENGINE_CHOICES:
            self.engine_combo.addItem(label, key)
        self.engine_combo.setCurrentIndex(max(0, self.engine_combo.findData(settings.engine)))
        self.engine_combo.setToolTip("The lip-sync engine the export uses. The regeneration network trains "
                                     "a small model per speaker before rendering: slow on a CPU.")
        cf = QFormLayout(compute)
        cf.addRow("Engine", self.engine_combo)
        cf.addRow("Device", self.device_combo)
        cf.addRow("In use", self.device_status)
        self.device_combo.currentIndexChanged.connect(self._update_device)

        # Folders
        folders = QGroupBox("Folders")
        self.cache_edit = QLineEdit(settings.cache_folder)
        from engine.runtime.paths import cache_dir

        self.cache_edit.setPlaceholderText(f"Default: {cache_dir()}")
        cbrowse = QPushButton("Browse…")
        cbrowse.clicked.connect(self._browse_cache)
        crow = QHBoxLayout()
        crow.addWidget(self.cache_edit, 1)
        crow.addWidget(cbrowse)
        ff = QFormLayout(folders)
        ff.addRow("Cache folder", crow)
        note = QLabel("Analysis results and models are cached here; a new folder applies after a restart.")
        note.setObjectName("statusNote")
        note.setWordWrap(True)
        ff.addRow("", note)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(faces)
        lay.addWidget(compute)
        lay.addWidget(folders)
        lay.addStretch(1)
        lay.addWidget(buttons)
        self._update_insight()
        self._update_device()

    def _browse_models(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "insightface model folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self.insight.setChecked(True)

    def _browse_cache(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Cache folder", self.cache_edit.text())
        if folder:
            self.cache_edit.setText(folder)

    def _update_insight(self) -> None:
        enabled = self.insight.isChecked()
        self.folder_edit.setEnabled(enabled)
        if not enabled:
            self.insight_status.setText("Using the built-in detector and landmarker.")
            self.insight_status.setProperty("state", "ok")
        else:
            folder = self.folder_edit.text().strip()
            ok, text = insightface_status(folder)
            self._show_insight(ok, text)
            if ok:  # the names look right: let the engine open the models and say what it can use
                self._check_request += 1
                rid = self._check_request

                def shown(report: object, rid: int = rid) -> None:
                    if rid == self._check_request and self.insight.isChecked():
                        self._show_insight(bool(report.ok), report.message())  # type: ignore[attr-defined]

                self._pool.start(lambda progress, cancel: engine_pack_report(folder), "insightface-check", on_result=shown)
                self.insight_status.setText("✔ " + text + " Checking the models…")
        self._repolish()

    def _show_insight(self, ok: bool, text: str) -> None:
        self.insight_status.setText(("✔ " if ok else "✖ ") + text)
        self.insight_status.setProperty("state", "ok" if ok else "bad")
        self._repolish()

    def _repolish(self) -> None:
        self.insight_status.style().unpolish(self.insight_status)
        self.insight_status.style().polish(self.insight_status)

    def _update_device(self) -> None:
        choice = str(self.device_combo.currentData())
        self._device_request += 1
        rid = self._device_request
        self.device_status.setText("Checking…")

        def shown(text: str, rid: int = rid) -> None:
            if rid == self._device_request:
                self.device_status.setText(text)

        def failed(exc: BaseException, rid: int = rid) -> None:
            from engine.errors import LipdubError

            if rid == self._device_request:
                msg = exc.user_text() if isinstance(exc, LipdubError) else f"{type(exc).__name__}: {exc}"
                self.device_status.setText("✖ " + msg)

        self._pool.start(lambda progress, cancel: resolve_device_text(choice), "device", on_result=shown, on_error=failed)

    def result_settings(self) -> AppSettings:
        s = self.settings
        s.face_backend = "insightface" if self.insight.isChecked() else "builtin"
        s.insightface_folder = self.folder_edit.text().strip()
        s.device = str(self.device_combo.currentData())
        s.engine = str(self.engine_combo.currentData())
        s.cache_folder = self.cache_edit.text().strip()
        return s
