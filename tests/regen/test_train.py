"""train_speaker: the CPU code path end to end with a tiny model; checkpoint, cancel, resume; devices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.errors import BadInputError, Cancelled
from engine.regen import NetRenderer, RegenConfig, checkpoint_path, load_checkpoint, train_speaker
from engine.runtime.jobs import CancelToken, Progress


def test_trains_and_validation_error_falls(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    path, analysis = talking
    # A directly painting generator: its validation error starts high and must fall (the residual one
    # starts at the reference, already close on this synthetic face; its learning is tested in test_nets).
    cfg = replace(tiny_config, max_steps=80, lr=2e-3, residual=False)
    reports: list[Progress] = []
    ckpt = train_speaker(path, analysis, 0, device="cpu", config=cfg, progress=reports.append, resume=False)
    state = load_checkpoint(ckpt)
    assert state["done"] and state["step"] == 80
    vals = [h["val_l1"] for h in state["history"]]
    assert len(vals) == 4 and vals[-1] < 0.8 * vals[0]
    # Rendering uses the weights of the best validation error, not necessarily the last ones.
    same = all(torch.equal(state["generator_best"][k], v) for k, v in state["generator"].items())
    assert same == (vals[-1] == min(vals)) and state["best_seen"] == min(vals)
    train = [r for r in reports if r.stage == "regen: training"]
    assert train[-1].done == 80 and train[-1].total == 80
    assert any(r.eta_s is not None and r.eta_s > 0 for r in train[:-1])
    assert "adv" in state["history"][-1]["train"]  # the discriminator joined after adv_start
    assert ckpt == checkpoint_path(path, 0, cfg)
    # A finished checkpoint is returned at once: no training reports.
    again: list[Progress] = []
    assert train_speaker(path, analysis, 0, device="cpu", config=cfg, progress=again.append) == ckpt
    assert not [r for r in again if r.stage == "regen: training"]


def test_cancel_saves_and_resume_continues(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    path, analysis = talking
    cfg = replace(tiny_config, max_steps=30, checkpoint_every=1000, seed=3)
    token = CancelToken()

    def stop_at_12(p: Progress) -> None:
        if p.stage == "regen: training" and p.done >= 12:
            token.cancel()

    with pytest.raises(Cancelled):
        train_speaker(path, analysis, 0, device="cpu", config=cfg, progress=stop_at_12, cancel=token, resume=False)
    ckpt = checkpoint_path(path, 0, cfg)
    state = load_checkpoint(ckpt)
    assert not state["done"] and state["step"] == 12
    steps: list[float] = []
    train_speaker(path, analysis, 0, device="cpu", config=cfg,
                  progress=lambda p: steps.append(p.done) if p.stage == "regen: training" else None)
    assert steps[0] == 13 and steps[-1] == 30
    assert load_checkpoint(ckpt)["done"]
    # resume=False starts over.
    steps.clear()
    train_speaker(path, analysis, 0, device="cpu", config=cfg, resume=False,
                  progress=lambda p: steps.append(p.done) if p.stage == "regen: training" else None)
    assert steps[0] == 1


def test_checkpoint_key_separates_speakers_ranges_and_configs(talking: tuple[Path, SimpleNamespace],
                                                              tiny_config: RegenConfig) -> None:
    path, _ = talking
    keys = {checkpoint_path(path, 0, tiny_config), checkpoint_path(path, 1, tiny_config),
            checkpoint_path(path, 0, tiny_config, (0, 30)), checkpoint_path(path, 0, replace(tiny_config, crop_size=64))}
    assert len(keys) == 4
    assert checkpoint_path(path, 0, replace(tiny_config, checkpoint_every=7)) == checkpoint_path(path, 0, tiny_config)


def test_frame_range_limits_the_training_frames(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    path, analysis = talking
    cfg = replace(tiny_config, max_steps=2)
    state = load_checkpoint(train_speaker(path, analysis, 0, device="cpu", config=cfg, frame_range=(0, 30)))
    assert state["bank"]["frames"].max() < 30


def test_errors_for_unknown_face_and_too_little_footage(talking: tuple[Path, SimpleNamespace],
                                                        tiny_config: RegenConfig) -> None:
    path, analysis = talking
    with pytest.raises(BadInputError, match="no face with id 5"):
        train_speaker(path, analysis, 5, device="cpu", config=tiny_config)
    with pytest.raises(BadInputError, match="too few"):
        train_speaker(path, analysis, 0, device="cpu", config=tiny_config, frame_range=(0, 4))


def test_device_parameter_is_respected(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    path, analysis = talking
    cfg = replace(tiny_config, max_steps=2)
    ckpt = train_speaker(path, analysis, 0, device=torch.device("cpu"), config=cfg)
    net = NetRenderer(ckpt, device="cpu")
    assert {p.device.type for p in net.generator.parameters()} == {"cpu"}
    assert RegenConfig.for_device("cuda").crop_size == 256 and RegenConfig.for_device("cpu").crop_size == 128
    if torch.cuda.is_available():
        gpu = NetRenderer(ckpt, device="cuda")
        assert {p.device.type for p in gpu.generator.parameters()} == {"cuda"}
    else:
        with pytest.raises(BadInputError, match="CUDA"):
            NetRenderer(ckpt, device="cuda")
        with pytest.raises(BadInputError, match="CUDA"):
            train_speaker(path, analysis, 0, device="cuda", config=cfg)


def test_rendered_frame_changes_only_inside_the_region(talking: tuple[Path, SimpleNamespace],
                                                       tiny_config: RegenConfig) -> None:
    from engine.media import VideoReader
    from tests.regen.synth_face import face_landmarks

    path, analysis = talking
    net = NetRenderer(train_speaker(path, analysis, 0, device="cpu", config=replace(tiny_config, max_steps=20)))
    with VideoReader(path, pixel_format="bgr24") as reader:
        frame = reader.frame(10)
    own = analysis.identities[0].landmarks[10]
    target = face_landmarks(0.45)
    out, alpha = net.render_frame(frame, own, target)
    assert out.shape == frame.shape and out.dtype == np.uint8
    outside = alpha == 0
    assert outside.any() and (~outside).sum() > 50
    assert np.array_equal(out[outside], frame[outside])
    assert np.abs(out[~outside].astype(int) - frame[~outside]).mean() > 0.5
    # The composer hook: a box-sized synth, equal to the given warp where the network's region ends.
    box = net.region_box(own, target, frame.shape[:2])
    x0, y0, x1, y1 = box
    warp = np.full((y1 - y0, x1 - x0, 3), 17, np.uint8)
    synth = net.render_box(frame, own, target, box, warp=warp)
    assert synth.shape == warp.shape
    assert np.array_equal(synth[alpha[y0:y1, x0:x1] == 0], warp[alpha[y0:y1, x0:x1] == 0])


def test_refiner_for_uses_the_cache_or_trains(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    from engine.regen import refiner_for

    path, analysis = talking
    cfg = replace(tiny_config, max_steps=3, seed=11)
    assert refiner_for(path, analysis, 0, device="cpu", config=cfg, train=False) is None
    net = refiner_for(path, analysis, 0, device="cpu", config=cfg)
    assert isinstance(net, NetRenderer)
    again = refiner_for(path, analysis, 0, device="cpu", config=cfg, train=False)
    assert isinstance(again, NetRenderer) and again.size == 32


def test_untrained_residual_network_returns_the_retrieval_warp(talking: tuple[Path, SimpleNamespace],
                                                               tiny_config: RegenConfig) -> None:
    """The correction starts at zero, and only the correction is resampled: native detail survives."""
    from dataclasses import asdict

    from engine.media import VideoReader
    from engine.regen import CropGeometry
    from engine.regen.nets import Generator
    from tests.regen.synth_face import face_landmarks

    path, analysis = talking
    lms = analysis.identities[0].landmarks
    g = Generator(tiny_config.base_channels, tiny_config.depth, residual=True)
    bank = {"crops": np.zeros((1, 32, 32, 3), np.uint8), "landmarks": np.asarray(lms[:1])}
    net = NetRenderer({"config": asdict(tiny_config), "geometry": CropGeometry.fit(lms).to_dict(),
                       "generator": g.state_dict(), "bank": bank})
    with VideoReader(path, pixel_format="bgr24") as reader:
        frame = reader.frame(3)
    box = net.region_box(lms[3], face_landmarks(0.4), frame.shape[:2])
    x0, y0, x1, y1 = box
    warp = np.random.default_rng(0).integers(0, 255, (y1 - y0, x1 - x0, 3), dtype=np.uint8)  # full of detail
    out = net.render_box(frame, lms[3], face_landmarks(0.4), box, warp=warp)
    assert np.abs(out.astype(int) - warp).max() <= 1


def test_the_region_shown_to_the_network_does_not_follow_the_frames_own_mouth(
        talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig) -> None:
    """Otherwise the network learns the original mouth's shape from the region and copies it into the dub."""
    from engine.media import VideoReader

    path, analysis = talking
    lms = analysis.identities[0].landmarks
    openings = [float(lm[14, 1] - lm[13, 1]) for lm in lms]
    closed, wide = int(np.argmin(openings)), int(np.argmax(openings))
    net = NetRenderer(train_speaker(path, analysis, 0, device="cpu", config=replace(tiny_config, max_steps=2, seed=5)))
    with VideoReader(path, pixel_format="bgr24") as reader:
        frame = reader.frame(0)
    target = lms[(closed + wide) // 2]
    a_closed, a_wide = net.network_region(lms[closed], target), net.network_region(lms[wide], target)
    assert np.array_equal(a_closed, a_wide) and (a_closed == 1).sum() > 50
    # What is composed back follows the faces themselves, inside the network's region.
    _, c_closed, _, _ = net.generate(frame, lms[closed], target)
    _, c_wide, _, _ = net.generate(frame, lms[wide], target)
    assert not np.array_equal(c_closed, c_wide) and (c_closed <= a_closed).all() and (c_wide <= a_wide).all()
    leaky = NetRenderer(train_speaker(path, analysis, 0, device="cpu",
                                      config=replace(tiny_config, max_steps=2, seed=5, fixed_region=False)))
    assert not np.array_equal(leaky.network_region(lms[closed], target), leaky.network_region(lms[wide], target))
