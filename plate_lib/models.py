"""Models: a registry by name and the recognisers.

Every model maps images ``[B, C, H, W]`` (float, 0..1) to ``(province_logits [B, P], ctc_logits [B, T, S+1])``:
a classifier over the province characters and CTC over the rest of the plate (class 0 is the blank).

- ``seed_crnn``: the course notebook's network, rebuilt faithfully (128×400 grayscale, VGG-style CNN, learned
  width and height projections, one BiLSTM, province + CTC heads) with its CTC defect fixed: the width
  projection gives ``ctc_steps`` CTC steps instead of 6, so doubled characters (皖A88888) can be emitted.
- ``small_crnn``: a compact CRNN for 48×144 input, ~0.07 GFLOPs a plate (the seed: ~20.5).
- ``small_crnn_lite`` (the default): ``small_crnn`` without its two costliest layers on a CPU (see its builder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class ModelSpec:
    """What a builder needs: sizes from the config and the alphabet."""

    in_channels: int
    height: int
    width: int
    n_provinces: int
    n_ctc_classes: int  # symbols + blank
    hidden: int = 128
    ctc_steps: int = 18
    dropout: float = 0.1
    norm: str = "batch"  # "batch", or "group": per-plate statistics, identical under any data-parallel split


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, spec: ModelSpec) -> nn.Module:
    """Build a registered model and check it accepts ``spec``'s image size."""
    if name not in _REGISTRY:
        raise ModelError(f"model.name {name!r} is not registered; choose one of {list_models()}")
    model = _REGISTRY[name](spec)
    try:
        with torch.no_grad():
            model.eval()
            prov, ctc = model(torch.zeros(1, spec.in_channels, spec.height, spec.width))
    except (RuntimeError, ValueError) as e:
        raise ModelError(
            f"model {name!r} cannot take {spec.in_channels}×{spec.height}×{spec.width} images "
            f"(preprocess.height/width/grayscale): {e}"
        ) from None
    assert prov.shape == (1, spec.n_provinces), prov.shape
    assert ctc.shape[0] == 1 and ctc.shape[2] == spec.n_ctc_classes, ctc.shape
    model.train()
    return model


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that follows a Conv2d (in an ``nn.Sequential``) into the conv, in place.

    For inference only (the model is put in eval mode): the same outputs up to float rounding, one op fewer per
    block, which is most of a small model's single-plate latency on a CPU. Training needs the unfused model.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- seed_crnn -------------------------------------------------------------------------------------------


class SeedCRNN(nn.Module):
    """The seed's CRNN. CNN: 64-128-256-256-512-512-512, four max-pools, batch norm on conv 2, 4, 6."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        chans = [64, 128, 256, 256, 512, 512, 512]
        layers: list[nn.Module] = []

        def conv(i: int, bn: bool = False) -> None:
            cin = spec.in_channels if i == 0 else chans[i - 1]
            k, p = (2, 0) if i == 6 else (3, 1)
            layers.append(nn.Conv2d(cin, chans[i], k, 1, p))
            if bn:
                layers.append(nn.BatchNorm2d(chans[i]))
            layers.append(nn.ReLU(inplace=True))

        conv(0)
        layers.append(nn.MaxPool2d(2, 2))
        conv(1)
        layers.append(nn.MaxPool2d(2, 2))
        conv(2, True)
        conv(3)
        layers.append(nn.MaxPool2d((2, 2), (2, 1), (0, 1)))
        conv(4, True)
        conv(5)
        layers.append(nn.MaxPool2d((2, 2), (2, 1), (0, 1)))
        conv(6, True)
        self.cnn = nn.Sequential(*layers)
        # feature map for this input (7×101 for 128×400, as in the seed): two 2×2 pools, two (2, 1) pools
        # padded by 1 in width, then the 2×2 valid conv
        fh = ((spec.height // 4 - 2) // 2 + 1 - 2) // 2 + 1 - 1
        fw = spec.width // 4 + 1 + 1 - 1
        if fh < 1 or fw < 1:
            raise ModelError(f"seed_crnn cannot take {spec.height}×{spec.width} images: it needs at least 32×8")
        self.linear_w = nn.Linear(fw, 1 + spec.ctc_steps)  # seed: 101 → 7; fixed: 1 province step + ctc_steps
        self.linear_h = nn.Linear(fh, 1)  # 7 → 1
        self.rnn = nn.LSTM(512, spec.hidden, bidirectional=True, batch_first=True)
        self.province_head = nn.Linear(2 * spec.hidden, spec.n_provinces)
        self.ctc_head = nn.Linear(2 * spec.hidden, spec.n_ctc_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.cnn(x)  # [B, 512, 7, 101]
        f = self.linear_w(f)  # [B, 512, 7, 1 + T]
        f = self.linear_h(f.transpose(2, 3)).squeeze(3)  # [B, 512, 1 + T]
        seq, _ = self.rnn(f.transpose(1, 2))  # [B, 1 + T, 2H]
        return self.province_head(seq[:, 0]), self.ctc_head(seq[:, 1:])


@register("seed_crnn")
def seed_crnn(spec: ModelSpec) -> nn.Module:
    return SeedCRNN(spec)


# --- small_crnn ------------------------------------------------------------------------------------------


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)
    return nn.BatchNorm2d(channels)


def conv_bn(cin: int, cout: int, stride: int | tuple[int, int] = 1, groups: int = 1, k: int = 3,
            norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        norm_layer(norm, cout),
        nn.ReLU(inplace=True),
    )


def separable(cin: int, cout: int, stride: int | tuple[int, int] = 1, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cin, stride, groups=cin, norm=norm), conv_bn(cin, cout, k=1, norm=norm))


class SmallCRNN(nn.Module):
    """Compact CRNN: a 5-block CNN to a [C, H/8, W/4] map, height collapsed by a conv, width pooled to
    ``ctc_steps`` columns, a BiGRU, then CTC per column and a province classifier on the left columns.

    ``stem`` is the first conv's width; ``collapse`` widens the map with a 1x1 conv (160 → 256) before the
    height is folded (False: fold the 160 channels straight into 256)."""

    def __init__(self, spec: ModelSpec, stem: int = 32, collapse: bool = True):
        super().__init__()
        n = spec.norm
        self.cnn = nn.Sequential(
            conv_bn(spec.in_channels, stem, 2, norm=n),  # H/2, W/2
            conv_bn(stem, 64, 2, norm=n),  # H/4, W/4
            separable(64, 96, norm=n),
            separable(96, 128, (2, 1), norm=n),  # H/8, W/4
            separable(128, 160, norm=n),
        )
        fh = -(-spec.height // 8)
        self.collapse = conv_bn(160, 256, k=1, norm=n) if collapse else nn.Identity()
        self.height_proj = nn.Conv2d(256 if collapse else 160, 256, (fh, 1), groups=8)  # [B, 256, 1, W']
        self.pool = nn.AdaptiveAvgPool2d((1, spec.ctc_steps))
        self.rnn = nn.GRU(256, spec.hidden, bidirectional=True, batch_first=True)
        self.drop = nn.Dropout(spec.dropout)
        self.province_cols = max(1, spec.ctc_steps // 5)
        self.province_head = nn.Linear(2 * spec.hidden, spec.n_provinces)
        self.ctc_head = nn.Linear(2 * spec.hidden, spec.n_ctc_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.collapse(self.cnn(x))  # [B, 256 (or 160), H/8, W/4]
        f = self.pool(torch.relu(self.height_proj(f)))  # [B, 256, 1, T]
        seq, _ = self.rnn(f.squeeze(2).transpose(1, 2))  # [B, T, 2H]
        seq = self.drop(seq)
        return self.province_head(seq[:, : self.province_cols].mean(1)), self.ctc_head(seq)


@register("small_crnn")
def small_crnn(spec: ModelSpec) -> nn.Module:
    return SmallCRNN(spec)


@register("small_crnn_lite")
def small_crnn_lite(spec: ModelSpec) -> nn.Module:
    """``small_crnn`` without the 1x1 widening before the height fold and with a 16-channel stem: the two
    layers that took a third of a CPU training step (torch.profiler). The default: level with ``seed_crnn``
    on the real sample photos in all three runs of benchmarks/accuracy.py, steadier across seeds than
    ``small_crnn``, and 1.45-1.66× its CPU training speed (benchmarks/results.json)."""
    return SmallCRNN(spec, stem=16, collapse=False)
