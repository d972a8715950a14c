"""Shapes of the networks, SSIM, and that a few optimisation steps reduce the loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.regen import RegenConfig
from engine.regen.data import extract_crops, make_batch
from engine.regen.nets import IN_CHANNELS, REFERENCE, Generator, PatchDiscriminator, patch_weight, ssim_map
from engine.regen.train import _tensors, build_models, generator_losses


@pytest.mark.parametrize(("size", "depth"), [(32, 2), (48, 3), (64, 4)])
def test_generator_and_discriminator_shapes(size: int, depth: int) -> None:
    g = Generator(base=4, depth=depth)
    d = PatchDiscriminator(base=4)
    x = torch.rand(2, IN_CHANNELS, size, size) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1.0
    score = d(y, x[:, -3:])
    assert score.shape[:2] == (2, 1) and score.shape[-1] == size // 8
    alpha = torch.zeros(2, 1, size, size)
    alpha[..., size // 2 :, :] = 1
    w = patch_weight(alpha, score)
    assert w.shape == score.shape and 0 < w.sum() < w.numel()


def test_ssim_is_one_for_identical_images_and_falls_with_noise() -> None:
    torch.manual_seed(0)
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(ssim_map(a, a), torch.ones(1, 3, 32, 32), atol=1e-4)
    slight = ssim_map(a, a + 0.05 * torch.randn_like(a)).mean()
    heavy = ssim_map(a, a + 0.5 * torch.randn_like(a)).mean()
    assert 1.0 > float(slight) > float(heavy)
    # A constant brightness shift changes luminance only: SSIM stays high but below 1.
    shifted = ssim_map(a, a + 0.1).mean()
    assert 0.9 < float(shifted) < 1.0
    assert torch.allclose(ssim_map(a, a * 0.5), ssim_map(a * 0.5, a), atol=1e-5)


def test_residual_generator_starts_as_the_reference() -> None:
    g = Generator(base=4, depth=2, residual=True)
    x = torch.rand(2, IN_CHANNELS, 32, 32) * 2 - 1
    assert torch.equal(g(x), x[:, REFERENCE])


@pytest.mark.parametrize("residual", [False, True])
def test_a_few_steps_reduce_the_loss(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig,
                                     residual: bool) -> None:
    path, analysis = talking
    torch.manual_seed(0)
    data = extract_crops(path, analysis.identities[0], size=tiny_config.crop_size)
    assert data.crops.shape[1:] == (32 + 2 * data.pad, 32 + 2 * data.pad, 3) and len(data) == 48

    def batch(rng: np.random.Generator, pairs: int) -> dict[str, torch.Tensor]:
        t = _tensors(make_batch(data, data.pairs(False), rng, pairs), torch.device("cpu"))
        if residual:  # references too bright: the correction the residual network must learn
            t["inputs"][:, REFERENCE] = (t["inputs"][:, REFERENCE] + 0.3).clamp(-1, 1)
        return t

    fixed = batch(np.random.default_rng(1), 4)
    g, _ = build_models(replace(tiny_config, residual=residual), torch.device("cpu"))
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)

    def loss() -> float:
        with torch.no_grad():
            return float(generator_losses(tiny_config, g, None, fixed)[0])

    before = loss()
    rng = np.random.default_rng(0)
    for _ in range(40):
        total, parts, _ = generator_losses(tiny_config, g, None, batch(rng, 2))
        assert set(parts) == {"l1", "ssim", "temporal"}
        opt.zero_grad()
        total.backward()
        opt.step()
    assert loss() < 0.75 * before
