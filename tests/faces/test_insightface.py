"""The insightface backend without real weights: pack checks, and the loading + inference code path run on
tiny generated ONNX models that have the shapes of a buffalo_l pack (their outputs mean nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.faces import analyse, get_backend
from engine.faces import landmarks as L
from engine.faces.insight import InsightFacePackError, check_insightface_pack, map_68_to_468

RNG = np.random.default_rng(0)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _head(name: str, x: str, cin: int, cout: int, bias: float, nodes: list, inits: list, scale: float = 0.01) -> str:
    """A 1x1 conv ``x`` -> ``cout`` channels (small random weights + ``bias``), returns the output name."""
    w = numpy_helper.from_array((RNG.normal(size=(cout, cin, 1, 1)) * scale).astype(np.float32), name + "_w")
    b = numpy_helper.from_array(np.full(cout, bias, np.float32), name + "_b")
    inits += [w, b]
    nodes.append(helper.make_node("Conv", [x, w.name, b.name], [name]))
    return name


def make_recognition(path: Path, dim: int = 16) -> Path:
    nodes: list = []
    inits: list = []
    nodes.append(helper.make_node("GlobalAveragePool", ["input.1"], ["g"]))
    c = _head("c", "g", 3, dim, 0.1, nodes, inits)
    nodes.append(helper.make_node("Flatten", [c], ["683"]))
    graph = helper.make_graph(nodes, "rec", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, dim])], inits)
    return _save(graph, path)


def make_landmark_68(path: Path) -> Path:
    nodes: list = []
    inits: list = []
    nodes.append(helper.make_node("GlobalAveragePool", ["data"], ["g"]))
    c = _head("c", "g", 3, 3309, 0.0, nodes, inits, scale=0.001)
    nodes.append(helper.make_node("Flatten", [c], ["fc1"]))
    graph = helper.make_graph(nodes, "lmk", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3309])], inits)
    return _save(graph, path)


def make_detector(path: Path, size: int = 64) -> Path:
    """SCRFD-shaped: 9 outputs (scores, boxes, key points at strides 8, 16, 32; 2 anchors per cell)."""
    nodes: list = []
    inits: list = []
    outs = {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        pooled = f"p{s}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [pooled], kernel_shape=[s, s], strides=[s, s]))
        # only the coarsest level scores above the threshold: a handful of candidate faces
        for kind, per, bias in (("score", 1, 3.0 if s == 32 else -5.0), ("bbox", 4, 1.0), ("kps", 10, 0.0)):
            c = _head(f"{kind}{s}c", pooled, 3, 2 * per, bias, nodes, inits)
            t = f"{kind}{s}t"
            nodes.append(helper.make_node("Transpose", [c], [t], perm=[0, 2, 3, 1]))
            shape = numpy_helper.from_array(np.array([-1, per], np.int64), f"{kind}{s}shape")
            inits.append(shape)
            r = f"{kind}{s}r"
            nodes.append(helper.make_node("Reshape", [t, shape.name], [r]))
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [r], [f"{kind}_{s}"]))
            else:
                nodes.append(helper.make_node("Identity", [r], [f"{kind}_{s}"]))
            n = (size // s) ** 2 * 2
            outs[kind].append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [n, per]))
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
                              outs["score"] + outs["bbox"] + outs["kps"], inits)
    return _save(graph, path)


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny_buffalo")
    make_detector(d / "det_tiny.onnx")
    make_landmark_68(d / "lmk_tiny.onnx")
    make_recognition(d / "rec_tiny.onnx")
    (d / "README.txt").write_text("tiny test pack")
    return d


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    report = check_insightface_pack(tmp_path / "buffalo_l")
    assert not report.ok and not report.exists
    assert "does not exist" in report.message() and "buffalo_l" in report.message()
    with pytest.raises(InsightFacePackError, match="does not exist"):
        get_backend("insightface", tmp_path / "buffalo_l")


def test_empty_folder_lists_everything_missing(tmp_path: Path) -> None:
    report = check_insightface_pack(tmp_path)
    assert report.exists and report.missing == ["detection", "landmark_3d_68", "recognition"]
    assert "holds: nothing" in report.message()


def test_incomplete_folder_names_what_is_missing_and_what_is_there(tmp_path: Path) -> None:
    make_recognition(tmp_path / "w600k_r50.onnx")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    report = check_insightface_pack(tmp_path)
    assert report.roles == {"recognition": "w600k_r50.onnx"}
    msg = report.message()
    assert "det_10g.onnx" in msg and "1k3d68.onnx" in msg  # what to add
    assert "w600k_r50.onnx" in msg and "notes.txt" in msg and "broken.onnx" in msg  # what is there
    with pytest.raises(InsightFacePackError) as err:
        get_backend("insightface", tmp_path)
    assert err.value.report.missing == ["detection", "landmark_3d_68"]


def test_roles_are_recognised_from_shapes(tiny_pack: Path) -> None:
    report = check_insightface_pack(tiny_pack)
    assert report.ok, report.message()
    assert report.roles == {"detection": "det_tiny.onnx", "landmark_3d_68": "lmk_tiny.onnx",
                            "recognition": "rec_tiny.onnx"}


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_backend_loads_and_runs_on_a_tiny_pack(tiny_pack: Path) -> None:
    backend = get_backend("insightface", tiny_pack)
    rgb = (RNG.random((120, 160, 3)) * 255).astype(np.uint8)
    dets = backend.detect(rgb)
    assert dets and dets[0].keypoints.shape == (5, 2)
    mesh = backend.landmarks_from_detection(rgb, dets[0])
    assert mesh.points.shape == (468, 3)
    essential = list(L.MOUTH + L.JAW + L.RIGHT_EYE + L.LEFT_EYE + (L.NOSE_TIP, L.NOSE_BASE))
    assert np.isfinite(mesh.points[essential, :2]).all()
    assert np.isfinite(mesh.points[:, :2]).all()  # the points outside the 68 are filled in
    assert np.isnan(mesh.points[:, 2]).all()  # depth unknown: pose from 2-d geometry
    emb = backend.embed(rgb, mesh.points)
    assert emb is not None and emb.shape == (16,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-5
    followed = backend.follow(rgb, mesh.points)
    assert followed.points.shape == (468, 3)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_analyse_runs_end_to_end_with_the_insightface_backend(tiny_pack: Path, tmp_path: Path) -> None:
    from tests.faces.test_real_media import _write

    frames = [(RNG.random((64, 64, 3)) * 60 + 100).astype(np.uint8) for _ in range(8)]
    path = _write(tmp_path / "noise.mp4", frames)
    result = analyse(path, backend="insightface", insightface_dir=tiny_pack, use_cache=False)
    assert result.backend.startswith("insightface-")
    # the tiny detector "finds" faces in every frame, and the tracker follows them through all 8
    assert result.identities
    for ident in result.identities:
        assert ident.landmarks.shape[1:] == (468, 2)
        assert np.isfinite(ident.landmarks[:, list(L.MOUTH)]).all()
        assert ident.frame_ranges == [(0, 7)]


def test_68_point_mapping_fills_the_named_contours() -> None:
    # a synthetic 68-point face: jaw on a half circle, mouth as an ellipse
    p = np.zeros((68, 2), np.float32)
    a = np.linspace(np.pi, 0, 17)
    p[:17] = np.stack([100 + 80 * np.cos(a), 100 + 80 * np.sin(a)], 1)
    p[17:22] = [[55, 68], [63, 64], [72, 63], [81, 64], [90, 67]]
    p[22:27] = [[110, 67], [119, 64], [128, 63], [137, 64], [145, 68]]
    p[36:42] = [[60, 80], [70, 75], [80, 75], [90, 80], [80, 85], [70, 85]]
    p[42:48] = [[110, 80], [120, 75], [130, 75], [140, 80], [130, 85], [120, 85]]
    p[27:36] = [[100, 80], [100, 90], [100, 100], [100, 110], [90, 115], [95, 116], [100, 117], [105, 116], [110, 115]]
    t = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    p[48:60] = np.stack([100 + 25 * np.cos(t), 140 + 10 * np.sin(t)], 1)
    t2 = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    p[60:68] = np.stack([100 + 18 * np.cos(t2), 140 + 4 * np.sin(t2)], 1)
    m = map_68_to_468(p)
    assert np.isfinite(m).all()
    assert np.allclose(m[L.MOUTH_CORNERS[0], :2], p[48]) and np.allclose(m[L.MOUTH_CORNERS[1], :2], p[54])
    assert np.allclose(m[L.CHIN, :2], p[8])
    # interpolated mouth points stay within the mouth's extent
    outer = m[list(L.MOUTH_OUTER), :2]
    assert outer[:, 0].min() >= 74 and outer[:, 0].max() <= 126
    assert abs(float(L.mouth_opening(m)) - 8 / 50) < 0.01  # inner gap 8 px, eye centres 50 px apart
    # filled points fall where they belong: the forehead above the eyes, the nose tip between them
    assert m[L.FOREHEAD, 1] < 75 and 60 < m[L.FOREHEAD, 0] < 140
    assert m[L.NOSE_TIP, 1] > 80


def test_68_point_fill_reproduces_a_real_mesh(shared_media: Path) -> None:
    # take the builtin mesh of real faces, keep only the 68 corresponding points, fill the rest back in
    from engine.faces.insight import _MAP_68
    from engine.media import read_frame

    backend = get_backend()
    errors = []
    for name in ("presenter_kim_1080p.mp4", "vox_threequarter.mp4", "hdtf_katiehill.mp4"):
        rgb = read_frame(shared_media / "video" / name, 30)
        mesh = backend.landmarks_from_detection(rgb, backend.detect(rgb)[0]).points
        pts68 = np.zeros((68, 3), np.float32)
        for k, m in _MAP_68.items():
            pts68[k] = mesh[m]
        filled = map_68_to_468(pts68)
        iod = float(L.inter_ocular(mesh))
        err = np.linalg.norm(filled[:, :2] - mesh[:, :2], axis=1) / iod
        errors.append(err)
        mouth = list(L.MOUTH)
        assert np.median(err[mouth]) < 0.01 and err[mouth].max() < 0.06, name  # the mouth matters most
    all_err = np.concatenate(errors)  # measured: median 0.006-0.014, p95 0.03-0.09 eye distances
    assert np.median(all_err) < 0.03 and np.percentile(all_err, 95) < 0.15
