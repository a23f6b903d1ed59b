"""Plate colours: blue, yellow or green, by the hue of a crop's plate background, and the length a plate of that
colour has. The network reads grayscale, so the crop's colour is information it never sees: ``plate predict``'s
``kind`` (``predict.plate_kind``) and the colour-aware decoding of ``predict.by_colour`` (``reading.decode_readings``:
a green crop read as an 8-character plate, a blue one as a 7-character plate) take it from here."""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue (0-180) of each plate colour's background; measured on real and generated crops
# (benchmarks/crop_checks.py): yellow 18-31 on real crops and 13-44 on synthetic ones; blue 90-126 and 100-120;
# green (new-energy plates, the white-to-green gradient's green half) 47-86
YELLOW_HUES = (8, 45)
GREEN_HUES = (47, 86)
BLUE_HUES = (88, 135)
SAMPLE_GRID = (64, 16)  # the band sampled on this grid (width, height): enough for a median or a share, and cheap
MIN_SATURATED = 0.15  # below this share of coloured pixels (night, infrared, washed out) the colour is not clear
# Wider than rectify.BACKGROUNDS on purpose: this is a median over the band where the plate is, so the car's paint
# cannot pull it far; rectify thresholds every pixel to find the plate's outline, where a range this wide would
# take in the car around a blue or yellow plate. Each was measured for its own use (benchmarks/crop_checks.py here,
# benchmarks/real_sets.py there).

# The plate length each colour issues: blue plates are 7 characters and green (small cars' new-energy) plates 8.
# Yellow is not here: a large vehicle's new-energy plate (8 characters) is yellow at its left, and its central band
# may read yellow.
COLOUR_LENGTHS = {"blue": 7, "green": 8}
# The share of the band's coloured pixels in one colour's hues before that colour says a plate's length: green
# plates 0.86 and more in 95 % of generated ones (0.88 and more on the CCPD sample's); other plates at most 0.52
# green (generated), 0.38 (the sample's), 0.67 (the sample's val photos cut with 75 % of loose border)
DECISIVE = 0.8


def _sample(bgr: np.ndarray) -> np.ndarray:
    """The crop's central band (the middle half of its height, 80 % of its width), where the plate's background
    is, its pixels sampled on ``SAMPLE_GRID`` (nearest: never mixed); black where the crop has no such band or is
    not 3-channel BGR."""
    h, w = bgr.shape[:2]
    band = bgr[h // 4:h - h // 4, w // 10:w - w // 10]
    if band.size == 0 or band.ndim != 3 or band.shape[2] != 3:
        return np.zeros((SAMPLE_GRID[1], SAMPLE_GRID[0], 3), np.uint8)
    return cv2.resize(band, SAMPLE_GRID, interpolation=cv2.INTER_NEAREST)


def _hsv(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples [N, H, W, 3] (BGR) -> hues [N, H*W] and whether each pixel is coloured (saturation and value at least
    60 and 40 of 255) [N, H*W], in one conversion."""
    n = len(samples)
    hsv = cv2.cvtColor(samples.reshape(-1, samples.shape[2], 3), cv2.COLOR_BGR2HSV).reshape(n, -1, 3)
    return hsv[..., 0], (hsv[..., 1] >= 60) & (hsv[..., 2] >= 40)


def plate_colour(bgr: np.ndarray) -> str:
    """``blue``, ``yellow``, ``green`` or ``unknown``: where the median hue of the coloured pixels of the crop's
    central band (``_sample``) falls; ``unknown`` when under ``MIN_SATURATED`` of them are coloured (night,
    infrared, washed out) or the hue is none of the three."""
    hues, coloured = _hsv(_sample(bgr)[None])
    hues = hues[0][coloured[0]]
    if len(hues) < MIN_SATURATED * coloured.size:
        return "unknown"
    hue = int(np.partition(hues, len(hues) // 2)[len(hues) // 2])  # the median (the upper, if two)
    for colour, (lo, hi) in (("yellow", YELLOW_HUES), ("green", GREEN_HUES), ("blue", BLUE_HUES)):
        if lo <= hue <= hi:
            return colour
    return "unknown"


def colour_lengths(crops: list[np.ndarray]) -> np.ndarray:
    """The number of characters a plate of each crop's colour has (``COLOUR_LENGTHS``: 7 blue, 8 green) where that
    colour is ``DECISIVE``: at least that share of the coloured pixels of the crop's central band; else 0 (yellow,
    a mixed band, too few coloured pixels). A median alone is not enough to change a reading: a blue plate on a
    green car, or under a green cast, can have a median hue of green. The crops at once: a few microseconds each."""
    if len(crops) == 0:
        return np.zeros(0, np.int64)
    hues, coloured = _hsv(np.stack([_sample(im) for im in crops]))
    n = coloured.sum(1)
    out = np.zeros(len(crops), np.int64)
    for colour, (lo, hi) in (("blue", BLUE_HUES), ("green", GREEN_HUES)):  # at most one holds 80 %
        share = (coloured & (hues >= lo) & (hues <= hi)).sum(1)
        out[share >= DECISIVE * n] = COLOUR_LENGTHS[colour]
    out[n < MIN_SATURATED * coloured.shape[1]] = 0
    return out


def colour_length(bgr: np.ndarray) -> int:
    """``colour_lengths`` of one crop."""
    return int(colour_lengths([bgr])[0])
