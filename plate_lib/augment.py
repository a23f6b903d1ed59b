"""Augment: random geometry and photometry on whole batches of tensors, each plate with its own draw.

One ``affine_grid`` + ``grid_sample`` call warps the batch (rotation, shear, zoom, shift per plate), then
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

    def uniform(lim: float) -> torch.Tensor:  # this shard's rows of a draw in [-lim, lim] for the global batch
        return (torch.rand(total, generator=g)[offset:offset + b] * 2 - 1).mul_(lim).to(dev)

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
    bright = uniform(cfg.brightness).view(b, 1, 1, 1)
    contrast = (1 + uniform(cfg.contrast)).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if cfg.noise > 0:
        sigma = (torch.rand(total, generator=g)[offset:offset + b] * cfg.noise).to(dev).view(b, 1, 1, 1)
        x = x + sigma * torch.randn((total, *x.shape[1:]), generator=g)[offset:offset + b].to(dev)
    return x.clamp_(0, 1)
