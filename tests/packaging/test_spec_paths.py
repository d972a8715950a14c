"""Fast checks of the PyInstaller spec (the full build takes many minutes: packaging/build.sh).

The spec is executed with stand-ins for PyInstaller's build classes, so these tests see exactly the
data files, libraries, scripts and excludes it would hand to PyInstaller, without building anything.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import pkgutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "lipdub_studio.spec"


def _load(name: str) -> types.ModuleType:
    """A module of packaging/ (not an importable package: that name belongs to PyPI's `packaging`)."""
    key = f"_lipdub_packaging_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, PACKAGING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


manifest = _load("bundle_manifest")


# --- running the spec with stand-ins -------------------------------------------------------------------


class _Analysis:
    def __init__(self, scripts: list[str], **kw: Any) -> None:
        self.inputs = scripts
        self.kw = kw
        self.scripts = [("pyiboot01_bootstrap", "bootstrap.py", "PYSOURCE")]
        self.scripts += [(Path(s).stem, s, "PYSOURCE") for s in scripts]
        self.binaries = [(Path(src).name, src, "BINARY") for src, _dest in kw.get("binaries", [])]
        self.datas = [(f"{dest}/{Path(src).name}", src, "DATA") for src, dest in kw.get("datas", [])]
        self.pure: list[Any] = []


class _Recorder:
    made: list[_Recorder] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.args, self.kw = args, kw
        _Recorder.made.append(self)


def _collect_submodules(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    assert spec and spec.submodule_search_locations
    names = [package]
    for info in pkgutil.walk_packages(list(spec.submodule_search_locations), prefix=f"{package}."):
        names.append(info.name)
    return names


def _collect_dynamic_libs(package: str) -> list[tuple[str, str]]:
    root = manifest.package_dir(package)
    out = []
    for pattern in ("*.so", "*.so.*", "*.dll", "*.dylib"):
        for f in glob.glob(str(root / "**" / pattern), recursive=True):
            out.append((f, str(Path(package, Path(f).parent.relative_to(root)))))
    return out


@pytest.fixture(scope="module")
def spec_run() -> dict[str, Any]:
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = _collect_submodules  # type: ignore[attr-defined]
    hooks.collect_dynamic_libs = _collect_dynamic_libs  # type: ignore[attr-defined]
    saved_modules = {k: sys.modules.get(k) for k in ("PyInstaller", "PyInstaller.utils", "PyInstaller.utils.hooks",
                                                     "bundle_manifest")}
    saved_path = list(sys.path)
    for name in ("PyInstaller", "PyInstaller.utils"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["PyInstaller.utils.hooks"] = hooks
    _Recorder.made = []
    namespace: dict[str, Any] = {
        "SPECPATH": str(PACKAGING), "Analysis": _Analysis, "PYZ": _Recorder, "EXE": _Recorder,
        "COLLECT": _Recorder, "__file__": str(SPEC), "__name__": "__main__",
    }
    try:
        exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    finally:
        sys.path[:] = saved_path
        for k, v in saved_modules.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    namespace["recorded"] = list(_Recorder.made)
    return namespace


# --- the tests -----------------------------------------------------------------------------------------


def test_every_required_model_file_is_found_where_the_engine_looks() -> None:
    files = manifest.model_files()
    by_package = {m.package for m in files}
    assert by_package == set(manifest.DATA_ONLY_PACKAGES)
    names = {m.source.name for m in files}
    for required in ("face_detection_full_range.tflite", "face_landmark.tflite", "silero_vad.onnx",
                     "dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat",
                     "model.bin.part1", "model.bin.part2", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert required in names, f"{required} is not among the bundled model files"
    for m in files:
        assert m.source.is_file() and m.source.stat().st_size > 0, m
        # the bundle must reproduce the package's folder, or find_spec will not find it when frozen
        assert m.dest_dir.split("/")[0] == m.package
        assert (manifest.package_dir(m.package) / Path(*m.dest_dir.split("/")[1:]) / m.source.name).is_file()


def test_every_path_the_spec_collects_exists(spec_run: dict[str, Any]) -> None:
    a = spec_run["a"]
    for script in a.inputs:
        assert Path(script).is_file(), script
    for _dest, src, _kind in a.datas + a.binaries:
        assert Path(src).exists(), f"the spec collects {src}, which does not exist here"
    dests = {dest for dest, _src, _kind in a.datas}
    for m in manifest.model_files():
        assert f"{m.dest_dir}/{m.source.name}" in dests, f"{m.source.name} is not collected"
    assert (ROOT / "resources").is_dir() and any(dest.startswith("resources") for dest in dests)
    libs = {Path(src).name for _dest, src, _kind in a.binaries}
    for package in manifest.NATIVE_LIB_PACKAGES:
        assert _collect_dynamic_libs(package), f"no native libraries found in {package}"
    assert libs, "no native libraries collected"


def test_spec_builds_two_executables_from_the_installed_entry_points(spec_run: dict[str, Any]) -> None:
    exes = {r.kw["name"]: r for r in spec_run["recorded"] if "name" in r.kw and "exclude_binaries" in r.kw}
    assert set(exes) == {"lipdub-studio", "lipdub"}
    entries = {name: [s[0] for s in exe.args[1] if s[0].startswith("entry_")] for name, exe in exes.items()}
    assert entries == {"lipdub-studio": ["entry_gui"], "lipdub": ["entry_cli"]}
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    targets = {**project.get("scripts", {}), **project.get("gui-scripts", {})}
    for exe_name, entry_file in (("lipdub-studio", "entry_gui.py"), ("lipdub", "entry_cli.py")):
        module, func = targets[exe_name].split(":")
        source = (PACKAGING / entry_file).read_text(encoding="utf-8")
        assert f"from {module} import {func}" in source, f"{entry_file} does not call {targets[exe_name]}"
    hidden = set(spec_run["a"].kw["hiddenimports"])
    cli = importlib.import_module("engine.cli")
    for name in [*cli.SUBCOMMAND_MODULES, "app.main", "frozen_smoke", "bundle_manifest"]:
        assert name in hidden, f"{name} is loaded dynamically but is not a hidden import of the spec"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level?) for every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) not in lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) not in lazy))
    return out


def test_nothing_the_engine_or_app_imports_is_excluded(spec_run: dict[str, Any]) -> None:
    excludes = set(spec_run["a"].kw["excludes"])
    assert {"tensorflow", "PySide6.QtWebEngineCore", "matplotlib", "tkinter"} <= excludes
    problems = []
    for path in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "app").rglob("*.py")]):
        for module, top_level in _imports(path):
            if any(module == e or module.startswith(e + ".") for e in excludes):
                where = "at module level" if top_level else "inside a function"
                problems.append(f"{path.relative_to(ROOT)} imports {module} ({where}), which the spec excludes")
    assert not problems, "\n".join(problems)


def test_smoke_clip_is_two_seconds_of_video_and_audio(tmp_path: Path) -> None:
    import av

    smoke = _load("smoke_test")
    clip = tmp_path / "clip.mp4"
    smoke.make_clip(clip)
    with av.open(str(clip)) as c:
        assert c.streams.audio, "the smoke clip has no audio track"
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
    assert frames == round(smoke.CLIP_SECONDS * 25)


def test_bundle_check_passes_from_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks the frozen app runs on itself (``lipdub-studio --bundle-check``) pass from source, so a
    failure in the built bundle points at the bundle, not at the check."""
    monkeypatch.syspath_prepend(str(PACKAGING))  # frozen_smoke imports bundle_manifest by its plain name
    report = _load("frozen_smoke").bundle_check()
    assert report["frozen"] is False
    assert len(report["models"]) == len(manifest.model_files())
    assert {"cv2", "av", "dlib", "onnxruntime", "ai_edge_litert", "ctranslate2", "torch"} <= set(report["libs"])
