"""Augment: per-plate random warps and photometry on whole batches."""

import math

import torch

from plate_lib.augment import augment_batch
from plate_lib.config import AugmentConfig

ZERO = AugmentConfig(enabled=True, rotate_deg=0, shear=0, scale=0, translate=0, brightness=0, contrast=0, noise=0)


def test_zero_strength_is_the_identity():
    x = torch.rand(4, 1, 48, 144)
    assert torch.allclose(augment_batch(x, ZERO, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_disabled_returns_the_batch_untouched():
    x = torch.rand(2, 3, 48, 144)
    assert augment_batch(x, AugmentConfig(enabled=False), torch.Generator()) is x


def test_same_generator_seed_gives_the_same_batch_and_plates_differ_within_it():
    x = torch.rand(1, 1, 48, 144).repeat(8, 1, 1, 1)
    a = augment_batch(x, AugmentConfig(enabled=True), torch.Generator().manual_seed(3))
    b = augment_batch(x, AugmentConfig(enabled=True), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.allclose(a[0], a[1])  # each plate gets its own draw
    assert a.min() >= 0 and a.max() <= 1


def test_rotation_is_in_degrees_in_pixel_space_whatever_the_aspect():
    # a horizontal line through the centre of a 3:1 image, rotated by at most 10 degrees, moves its end
    # points vertically by at most tan(10°) × half the width
    x = torch.zeros(16, 1, 48, 144)
    x[:, :, 23:25, :] = 1
    cfg = ZERO.model_copy(update={"rotate_deg": 10.0})
    y = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    rows = torch.arange(48).float()
    for img in y[:, 0]:
        col = img[:, 10]  # 62 px left of the centre
        if col.sum() > 0.5:
            centre = (col * rows).sum() / col.sum()
            assert abs(centre - 23.5) <= math.tan(math.radians(10)) * 62 + 1.5
