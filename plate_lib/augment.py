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


def _uniform(n: int, lim: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2 - 1).mul_(lim).to(device)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """``x``: [B, C, H, W] float in 0..1 → augmented, same shape. ``g`` (a CPU generator) makes it repeatable."""
    if not cfg.enabled:
        return x
    b, dev = x.shape[0], x.device
    ang = _uniform(b, math.radians(cfg.rotate_deg), g, dev)
    shear = _uniform(b, cfg.shear, g, dev)
    scale = 1 + _uniform(b, cfg.scale, g, dev)
    tx, ty = _uniform(b, 2 * cfg.translate, g, dev), _uniform(b, 2 * cfg.translate, g, dev)
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
    bright = _uniform(b, cfg.brightness, g, dev).view(b, 1, 1, 1)
    contrast = (1 + _uniform(b, cfg.contrast, g, dev)).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if cfg.noise > 0:
        sigma = (torch.rand(b, generator=g) * cfg.noise).to(dev).view(b, 1, 1, 1)
        x = x + sigma * torch.randn(x.shape, generator=g).to(dev)
    return x.clamp_(0, 1)
