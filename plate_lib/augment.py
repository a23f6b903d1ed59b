"""Augment: random geometry and photometry on whole batches of tensors, each plate with its own draw.

One ``affine_grid`` + ``grid_sample`` call warps the batch (rotation, shear, zoom, shift per plate); with
``adverse``, a share of the plates is blurred (motion or defocus, one grouped convolution) or darkened; then
brightness, contrast and noise are applied per plate. It runs wherever the batch is (CPU or GPU), so the
data loader only slices uint8 arrays. torchvision's v2 transforms draw one set of parameters per call, which
would give every plate of a batch the same warp.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, offset: int = 0,
                  total: int | None = None) -> torch.Tensor:
    """``x``: [B, C, H, W] float in 0..1 → augmented, same shape. ``g`` (a CPU generator) makes it repeatable.

    In multi-process training ``x`` is rows ``offset .. offset + B`` of a global batch of ``total``: the draws
    are made for the whole global batch and sliced, so each plate is augmented as in a single process.
    """
    if not cfg.enabled:
        return x
    b, dev = x.shape[0], x.device
    total = total or b

    def uniform(lim: float, *shape: int) -> torch.Tensor:  # this shard's rows of a global batch's draw in ±lim
        return (torch.rand(total, *shape, generator=g)[offset:offset + b] * 2 - 1).mul_(lim).to(dev)

    ang = uniform(math.radians(cfg.rotate_deg))
    shear = uniform(cfg.shear)
    scale = 1 + uniform(cfg.scale)
    tx, ty = uniform(2 * cfg.translate), uniform(2 * cfg.translate)
    aspect = x.shape[3] / x.shape[2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    # pixel-space M = rotation @ shear, divided by the zoom; normalised theta = D^-1 M D, D = diag(W/2, H/2)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cos / scale
    theta[:, 0, 1] = (cos * shear - sin) / aspect / scale
    theta[:, 1, 0] = sin * aspect / scale
    theta[:, 1, 1] = (sin * shear + cos) / scale
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.adverse > 0:  # no draws at 0: a recipe without it trains as before, bit for bit
        kind, strength, angle = (t[offset:offset + b] for t in adverse_draws(total, cfg.adverse, g))
        x = blur(x, kind, strength, angle, cfg)
    if cfg.colour > 0 and x.shape[1] == 3:  # no draws at 0 or on grey input: recipes without it train as before
        x = colour_response(x, 1 + uniform(cfg.colour, 3), 1 + uniform(2 * cfg.colour, 1))
    bright = uniform(cfg.brightness).view(b, 1, 1, 1)
    contrast = (1 + uniform(cfg.contrast)).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if cfg.adverse > 0:
        dark = kind == DARK
        gain = torch.where(dark, cfg.darken + (DARK_GAIN_MAX - cfg.darken) * strength, torch.ones_like(strength))
        x = x * gain.to(dev).view(b, 1, 1, 1)
        dark_noise = torch.randn((total, *x.shape[1:]), generator=g)[offset:offset + b]
        x = x + (DARK_NOISE * dark.float()).to(dev).view(b, 1, 1, 1) * dark_noise.to(dev)
    if cfg.noise > 0:
        sigma = (torch.rand(total, generator=g)[offset:offset + b] * cfg.noise).to(dev).view(b, 1, 1, 1)
        x = x + sigma * torch.randn((total, *x.shape[1:]), generator=g)[offset:offset + b].to(dev)
    return x.clamp_(0, 1)


def colour_response(x: torch.Tensor, gains: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] colour plates as another camera renders them: each plate's saturation scaled about its grey
    (``saturation``, [B, 1]), then each channel multiplied by its white-balance gain (``gains``, [B, 3])."""
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * saturation.view(-1, 1, 1, 1).clamp(min=0)
    return x * gains.view(-1, 3, 1, 1)


CLEAR, MOTION, DEFOCUS, DARK = 0, 1, 2, 3  # adverse_draws' kinds
DARK_GAIN_MAX = 0.6  # a darkened plate's exposure gain is drawn from augment.darken up to this
DARK_NOISE = 0.02  # sensor noise sigma of a darkened plate (images in 0..1)


def adverse_draws(n: int, share: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``n`` plates: the kind of each (``CLEAR``, or with probability ``share`` one of ``MOTION``,
    ``DEFOCUS``, ``DARK`` drawn evenly), a strength in 0..1 and an angle in radians (motion: within 30° of
    horizontal)."""
    chosen = torch.rand(n, generator=g) < share
    kind = torch.where(chosen, torch.randint(MOTION, DARK + 1, (n,), generator=g), torch.full((n,), CLEAR))
    strength = torch.rand(n, generator=g)
    angle = (torch.rand(n, generator=g) - 0.5) * (math.pi / 3)
    return kind, strength, angle


def blur(x: torch.Tensor, kind: torch.Tensor, strength: torch.Tensor, angle: torch.Tensor,
         cfg: AugmentConfig) -> torch.Tensor:
    """Each plate of ``x`` [B, C, H, W] convolved with its own kernel (edges repeated): a motion streak of
    0.2..1 × ``cfg.motion_blur`` of the width at its angle, a Gaussian of sigma 0.33..1 × ``cfg.defocus`` of the
    height, or (any other kind) none. Each kernel sums to 1, so a blurred plate keeps its brightness."""
    b, c, h, w = x.shape
    length = cfg.motion_blur * w * (0.2 + 0.8 * strength)
    sigma = (cfg.defocus * h * (1 + 2 * strength) / 3).clamp_min(1e-3)
    motion, defocus = kind == MOTION, kind == DEFOCUS
    reach = max(float(length[motion].max()) / 2 if motion.any() else 0.0,
                3 * float(sigma[defocus].max()) if defocus.any() else 0.0)
    r = math.ceil(reach)
    if r == 0:
        return x
    ax = torch.arange(-r, r + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")  # [K, K]
    cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
    along = (xx * cos + yy * sin).clamp(-length.view(b, 1, 1) / 2, length.view(b, 1, 1) / 2)
    dist = torch.hypot(xx - along * cos, yy - along * sin)  # to the streak, a segment through the centre
    streak = (1 - dist).clamp_min(0)
    gauss = torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma.view(b, 1, 1) ** 2))
    delta = ((xx == 0) & (yy == 0)).float().expand(b, -1, -1)
    k = torch.where(motion.view(b, 1, 1), streak, torch.where(defocus.view(b, 1, 1), gauss, delta))
    k = (k / k.sum(dim=(1, 2), keepdim=True)).to(x.device, x.dtype)
    k = k.repeat_interleave(c, 0).unsqueeze(1)  # [B·C, 1, K, K]: a channel's kernel is its plate's
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate"), k, groups=b * c)
    return y.reshape(b, c, h, w)
