"""The networks and losses: a U-Net generator, a conditional patch discriminator, SSIM, the losses.

Images are float tensors in [-1, 1], (B, 3, S, S). The generator's input stacks (channels):
the crop with the mouth region blanked (3), the region's alpha (1), the reference (3: a warped mouth
for the target shape), and the target mouth + jaw map (3). Its output is the whole crop (3); only the
region inside the alpha is kept (:func:`blend`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 10
MAP_CHANNELS = 3


def _norm(ch: int) -> nn.Module:
    return nn.GroupNorm(min(8, max(1, ch // 4)), ch)


class _Block(nn.Module):
    """Two 3x3 convolutions (the first optionally strided), GroupNorm, LeakyReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1), _norm(cout), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1), _norm(cout), nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


#: Where the reference sits in the generator's input channels.
REFERENCE = slice(4, 7)


class Generator(nn.Module):
    """U-Net: ``depth`` stride-2 levels from ``base`` channels (doubling, capped at ``max_ch``).

    With ``residual`` the output is the reference plus a learned correction (zero at initialisation):
    the network starts from the retrieval warp's real texture at full sharpness and learns what to fix
    (shape, colour, seams, teeth), instead of painting the mouth from nothing, which on a CPU budget
    of a few hundred steps stays blurry. Without it the output is painted directly (tanh)."""

    def __init__(self, base: int = 16, depth: int = 4, max_ch: int = 256, in_ch: int = IN_CHANNELS,
                 residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        chans = [min(max_ch, base * 2**k) for k in range(depth + 1)]
        self.stem = _Block(in_ch, chans[0])
        self.down = nn.ModuleList([_Block(chans[k], chans[k + 1], stride=2) for k in range(depth)])
        self.up = nn.ModuleList([_Block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], 3, 1)
        if residual:
            with torch.no_grad():
                self.head.weight.zero_()
                if self.head.bias is not None:
                    self.head.bias.zero_()
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        if self.residual:
            return torch.clamp(x[:, REFERENCE] + self.head(h), -1.0, 1.0)
        return torch.tanh(self.head(h))


class PatchDiscriminator(nn.Module):
    """Patch discriminator conditioned on the target landmark map: one score per ~30-px patch."""

    def __init__(self, base: int = 32, layers: int = 3, in_ch: int = 3 + MAP_CHANNELS) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_ch, base, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = base
        for k in range(1, layers):
            nxt = min(base * 2**k, 256)
            mods += [nn.Conv2d(ch, nxt, 4, 2, 1), _norm(nxt), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        mods += [nn.Conv2d(ch, ch, 3, 1, 1), _norm(ch), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(ch, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, image: torch.Tensor, lmap: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, lmap], dim=1))  # type: ignore[no-any-return]


def blend(generated: torch.Tensor, source: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The generated pixels inside the region, the source outside it."""
    return source + alpha * (generated - source)


def _gaussian(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (B, 3, H, W) of images in [-1, 1], Gaussian window.

    Computed on intensities mapped to [0, 1] as SSIM's luminance term expects non-negative values."""
    a, b = (a.float() + 1) / 2, (b.float() + 1) / 2
    w = _gaussian(window, sigma, a.device, a.dtype)
    pad = window // 2

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), w, groups=3)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def masked_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) weighted by ``weight`` (B, 1, H, W)."""
    w = weight.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-6)


def region_weight(alpha: torch.Tensor) -> torch.Tensor:
    """Where reconstruction losses count: the region (hard) and a small margin of context around it."""
    return (F.max_pool2d(alpha, 5, 1, 2) > 0).float()


def patch_weight(alpha: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Which discriminator patches look at the region: the alpha pooled to the score map's size."""
    return (F.adaptive_max_pool2d(alpha, like.shape[-2:]) > 0).float()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return 0.5 * (masked_mean((real.float() - 1) ** 2, weight) + masked_mean(fake.float() ** 2, weight))


def lsgan_g_loss(fake: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return masked_mean((fake.float() - 1) ** 2, weight)
