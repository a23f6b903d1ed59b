"""Synthetic plates: the project's embedded default data, so training runs on a fresh machine.

``generate_zip`` writes a zip in the CCPD2019-dl1 layout (``synthetic/train/000123-皖A12345.jpg``) of plate
crops drawn the way CCPD shows them: a blue 7-character plate (white characters) or a green 8-character
new-energy plate (black characters), slightly tilted and perspective-warped, tightly cropped with a bit of car
around it (or cut out from its corners as CCPD2019 photos are), then blurred, lit, tinted, soiled and
JPEG-compressed at random. Characters come from ``glyphs``: mostly the plate typeface, sometimes a font.

Speed comes from drawing small: glyph masks are made once per process and cached per plate resolution; a plate is composed with numpy slicing at about the
output size, placed by one ``cv2.warpPerspective`` and degraded with cheap cv2/numpy operations. Each plate's
random generator is seeded from ``(seed, split, index)``, so a zip is byte-identical whatever ``workers`` is.
"""

from __future__ import annotations

import colorsys
import functools
import json
import multiprocessing as mp
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import degrade as degrade_
from . import glyphs
from .glyphs import DIGITS, FONTS, LETTERS, PLATE_FONT, WEIGHTS
from .plates import PROVINCES, check_plate, is_large_new_energy
from .sources import rectify

# --- what plates say ------------------------------------------------------------------------------------

# Character counts per plate position over 91,979 CCPD2019 test plates (blur, db, fn, rotate, tilt subsets);
# position 0 is the province, 1 the city letter. Each row: the characters, then their counts in that order.
_POSITION_TABLE = [
    ("皖苏浙豫鄂沪京粤鲁湘闽赣冀陕晋津川渝辽云黑甘贵蒙桂新吉宁青琼",
     [81185, 2658, 1344, 621, 597, 584, 579, 577, 564, 437, 418, 394, 344, 335, 246, 235, 221, 200, 188, 69,
      67, 45, 17, 16, 13, 11, 8, 2, 2, 2]),
    ("ANBCHDKESMFGJLQRPYTXV",
     [77596, 1690, 1530, 1297, 1232, 1183, 1059, 1048, 746, 727, 716, 634, 565, 531, 525, 426, 366, 61, 21, 18,
      8]),
    ("LYHZX0MC8G9ADW2J6S5137RFBTKNPUVE4Q",
     [3714, 3687, 3608, 3455, 3305, 3298, 3172, 3078, 3038, 3000, 2995, 2944, 2926, 2902, 2901, 2881, 2850,
      2834, 2798, 2772, 2719, 2535, 2481, 2451, 2413, 2361, 2359, 2144, 2138, 1963, 1903, 1886, 1362, 1106]),
    ("8109657234YHLXZDATCWJMGSNFRUKVEBPQ",
     [6864, 6497, 6419, 6362, 6276, 6076, 5858, 5809, 5614, 2180, 1711, 1683, 1646, 1602, 1552, 1537, 1517,
      1513, 1511, 1502, 1489, 1454, 1436, 1389, 1368, 1356, 1330, 1315, 1300, 1220, 1215, 1202, 1192, 984]),
    ("0182695734YLAXHMZDCWTGJSBFRVNKEUPQ",
     [8400, 8362, 8132, 7848, 7751, 7711, 7501, 7259, 6711, 2892, 1109, 1016, 1003, 965, 961, 942, 923, 920,
      862, 838, 833, 818, 817, 813, 746, 733, 729, 720, 692, 689, 667, 618, 617, 381]),
    ("1682097534ADBMLQZCEVTFPXGYSHRWNKJU",
     [9817, 9727, 9691, 9405, 9168, 9039, 8142, 7823, 7431, 3119, 553, 494, 416, 411, 388, 380, 378, 375, 373,
      369, 365, 335, 332, 332, 330, 328, 323, 319, 318, 317, 316, 315, 284, 266]),
    ("8960751234LYHXZMDWJCATFVNSKRPGBEUQ",
     [9856, 9042, 8922, 7887, 7803, 7172, 6667, 6626, 6604, 2402, 1172, 1031, 1005, 991, 957, 945, 943, 907,
      896, 889, 867, 803, 802, 760, 742, 718, 662, 654, 650, 626, 625, 595, 587, 171]),
]
POSITION_COUNTS: list[dict[str, int]] = [dict(zip(chars, counts, strict=True)) for chars, counts in _POSITION_TABLE]
"""Real CCPD2019 character counts per plate position (0 = province, 1 = city letter, 2..6 the rest)."""



HOME = "皖"  # CCPD's home province (Anhui): 88 % of its plates


@functools.lru_cache(maxsize=64)
def _table(position: int, power: float = 1.0, home_share: float | None = None) -> tuple[str, np.ndarray]:
    """The characters of a plate position and their cumulative probabilities (counts ** power). For the
    province (position 0) with ``home_share``: 皖 gets that share and the other 30 split the rest."""
    counts = {p: POSITION_COUNTS[0].get(p, 0) + 1 for p in PROVINCES} if position == 0 else POSITION_COUNTS[position]
    weights = np.array(list(counts.values()), dtype=np.float64) ** power
    if position == 0 and home_share is not None:
        home = list(counts).index(HOME)
        weights[home] = 0.0
        weights *= (1 - home_share) / weights.sum()
        weights[home] = home_share
    return "".join(counts), np.cumsum(weights / weights.sum())


def _pick(rng: np.random.Generator, chars: str, cdf: np.ndarray) -> str:
    """One of ``chars``, drawn by their cumulative probabilities ``cdf``."""
    return chars[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(chars) - 1)]


def _draw(rng: np.random.Generator, position: int, power: float = 1.0, home_share: float | None = None) -> str:
    return _pick(rng, *_table(position, power, home_share))


# New-energy plates (GA 36-2018): a small car's third character says its kind, D or F until 2021, since then also
# A, B, C, E (electric, as D) and G, H, J, K (the others, as F); shares assumed, the newer letters rarer
# (synth.new_energy_letters). A large vehicle's plate (lorries, buses) ends in D or F after five digits, on a yellow
# and green plate (synth.large_new_energy).
NEW_ENERGY_KINDS = {"D": 0.45, "F": 0.25, "A": 0.05, "B": 0.04, "C": 0.04, "E": 0.04, "G": 0.04, "H": 0.03,
                    "J": 0.03, "K": 0.03}
_NEW_ENERGY_TABLE = ("".join(NEW_ENERGY_KINDS), np.cumsum(list(NEW_ENERGY_KINDS.values())))


def _d_or_f(rng: np.random.Generator) -> str:
    """A new-energy plate's kind as issued until 2021: D (electric) or, on 35 %, F (hybrid and the others)."""
    return "DF"[int(rng.random() < 0.35)]


def sample_plate(rng: np.random.Generator, green: bool = False, province_flatten: float = 0.0,
                 home_share: float | None = None, new_energy_letters: bool = False, large_share: float = 0.0) -> str:
    """A plate text with CCPD's character statistics: blue or yellow ``皖A12345``, green new-energy ``皖AD12345``
    (small cars: D or F after the city letter, or with ``new_energy_letters`` any of ``NEW_ENERGY_KINDS``) or, on
    ``large_share`` of the green ones, a large vehicle's ``皖A12345D``.

    The province is drawn with weights ``(count + 1) ** (1 - province_flatten)`` over all 31 provinces, so 0
    keeps CCPD's skew (皖 about 88 %) and 1 is uniform; the +1 lets provinces CCPD lacks (藏) appear too.
    ``home_share`` (None: no special case) fixes 皖's share and spreads the rest over the other 30 that way.
    """
    if not 0.0 <= province_flatten <= 1.0:
        raise ValueError(f"province_flatten must be in [0, 1], got {province_flatten}")
    if not 0.0 <= large_share <= 1.0:
        raise ValueError(f"large_share must be in [0, 1], got {large_share}")
    if home_share is not None and not 0.0 <= home_share <= 1.0:
        raise ValueError(f"home_share must be in [0, 1] or None, got {home_share}")
    head = _draw(rng, 0, 1.0 - province_flatten, home_share) + _draw(rng, 1)
    if green and large_share > 0 and rng.random() < large_share:  # a large vehicle's: five digits, then D or F
        tail = "".join(DIGITS[d] for d in rng.integers(0, 10, 5)) + _d_or_f(rng)
    elif green:  # a small car's: its kind (D electric, F hybrid, …), a letter or digit, then four digits
        second = LETTERS[rng.integers(len(LETTERS))] if rng.random() < 0.3 else DIGITS[rng.integers(10)]
        kind = _pick(rng, *_NEW_ENERGY_TABLE) if new_energy_letters else _d_or_f(rng)
        tail = kind + second + "".join(DIGITS[d] for d in rng.integers(0, 10, 4))
    else:
        tail = "".join(_draw(rng, position) for position in range(2, 7))
    return check_plate(head + tail)


# --- configuration --------------------------------------------------------------------------------------

Quality = Annotated[int, Field(ge=1, le=100)]


class SynthConfig(BaseModel):
    """How many synthetic plates to make, and how they look."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_train: int = Field(20000, ge=0, le=10_000_000, description="Plates in synthetic/train/")
    n_test: int = Field(2000, ge=0, le=10_000_000, description="Plates in synthetic/test/")
    green_fraction: float = Field(0.1, ge=0.0, le=1.0, description="Share of green 8-character new-energy plates")
    yellow_fraction: float = Field(
        0.15, ge=0.0, le=1.0, description="Share of yellow single-row plates (black characters on yellow: lorries, "
                                          "buses), drawn from the 7-character ones")
    province_flatten: float = Field(
        1.0, ge=0.0, le=1.0,
        description="0 = CCPD's province skew (皖 88 %), 1 = uniform; weights = (count + 1) ** (1 - flatten)")
    home_share: float | None = Field(
        0.2, ge=0.0, le=1.0,
        description="皖's share of the plates (CCPD's home province); the other 30 split the rest by "
                    "province_flatten. None: 皖 is weighted like the others")
    test_balanced: bool = Field(
        True, description="The test split draws every one of the 31 provinces equally often (macro province accuracy)")
    adverse_fraction: float = Field(
        0.15, ge=0.0, le=1.0,
        description="Share of plates under one adverse condition: low light, over-exposure, glare, haze, rain or "
                    "strong motion blur (degrade.adverse)")
    new_energy_letters: bool = Field(
        False, description="Small cars' new-energy plates take every kind letter issued (A-K but I, since 2021), "
                           "not D and F only (measured, not adopted: docs/experiments.md)")
    large_new_energy: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of green plates that are large vehicles' (five digits, then D or F; "
                                         "yellow and green)")
    box_clip: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Share of bounding-box crops cut inside the plate's box on one side by 5-8 % of its width, "
                    "clipping the first or last character (0.2: 8 % of box crops lose part of one)")
    rectified_fraction: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Share of plates cut out from their corners to 220x70 as CCPD2019 photos are (the rest: "
                    "bounding-box crops as in CCPD2019-dl1)")
    seed: int = Field(0, ge=0, description="Seed; plate i of a split uses np.random.default_rng([seed, split, i])")
    jpeg_quality: tuple[Quality, Quality] = Field(
        (40, 95), description="JPEG quality range (low, high), sampled per plate")
    degrade: float = Field(1.0, ge=0.0, le=2.0, description="Strength of all degradations; 0 = clean renders")
    workers: int = Field(0, ge=0, le=256, description="Processes for generate_zip; 0 = os.cpu_count()")

    @model_validator(mode="after")
    def _quality_range_ordered(self) -> SynthConfig:
        low, high = self.jpeg_quality
        if low > high:
            raise ValueError(f"synth.jpeg_quality must be (low, high) with low <= high, got {self.jpeg_quality}")
        if self.green_fraction + self.yellow_fraction > 1:
            raise ValueError(f"synth.green_fraction + synth.yellow_fraction must be at most 1, got "
                             f"{self.green_fraction} + {self.yellow_fraction}")
        return self


# --- layout -------------------------------------------------------------------------------------------

# Sizes in mm (GA 36-2018): plate width, characters' width, spacing, the gap after the city letter (where
# blue plates print a dot)
_LAYOUT = {7: (440.0, 45.0, 12.0, 34.0), 8: (480.0, 43.0, 9.0, 49.0)}
_PLATE_H, _CHAR_TOP = 140.0, 25.0


_LEVELS = (0.22, 0.32, 0.46, 0.66, 0.9)  # plate resolutions (px/mm) the plates are drawn at
_PLATE_FONT_SHARE = 0.6  # plates drawn in the plate typeface; the rest in one of glyphs.FONTS


def _text_left(n: int) -> float:
    """Where the first of ``n`` characters starts, mm from the plate's left edge (the text centred)."""
    plate_w, char_w, spacing, gap = _LAYOUT[n]
    return (plate_w - n * char_w - (n - 2) * spacing - gap) / 2


# --- the plate itself -----------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One colour given as OpenCV HSV (h in 0..180, s and v in 0..255), as a float32 BGR triple."""
    r, g, b = colorsys.hsv_to_rgb(h / 180 % 1.0, min(s, 255) / 255, min(v, 255))
    return np.array([b, g, r], np.float32)


def _yellow(rng: np.random.Generator) -> np.ndarray:
    """A yellow plate's paint, dim and dusty ones too."""
    return _hsv(rng.uniform(18, 30), rng.uniform(80, 255), rng.uniform(110, 250))


def _gradient(h: int, w: int, top: np.ndarray, bottom: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """An opaque h x w BGRA image shading from ``top`` to ``bottom`` (BGR) colour.

    Built as one column repeated ``w`` times: numpy broadcasting over 3-4 channels is several times slower.
    """
    t = (np.arange(h, dtype=np.float32) / max(h - 1, 1))[:, None] ** gamma
    column = np.ones((h, 1, 4), np.float32)
    column[:, 0, :3] = top + (bottom - top) * t
    return np.repeat(column, w, axis=1)


def _paint(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Paint ``color`` (BGR) over the BGRA ``canvas`` with opacity ``alpha`` (h x w, uint8 or float 0..1).

    Shapes are drawn into uint8 masks: OpenCV anti-aliases only 8-bit images.
    """
    h, w = alpha.shape
    opacity = cv2.cvtColor(alpha.astype(np.float32) * np.float32(1 / 255 if alpha.dtype == np.uint8 else 1),
                           cv2.COLOR_GRAY2BGRA)
    canvas += (_gradient(h, w, color, color) - canvas) * opacity


COLOURS = ("blue", "yellow", "green")  # blue and yellow plates have 7 characters, green ones 8


def _holder_print(canvas: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int], ink: np.ndarray) -> None:
    """Small print on the plate holder below the plate (a dealer's name and phone number): rows of tiny marks
    that a reader must not take for characters."""
    x0, y0, x1, y1 = box
    if y1 - y0 < 4 or x1 - x0 < 20:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    size = max(2, int((y1 - y0) * rng.uniform(0.3, 0.6)))
    x = int(rng.uniform(0.05, 0.3) * (x1 - x0))
    while x < (x1 - x0) * rng.uniform(0.7, 0.95):
        w = max(1, int(size * rng.uniform(0.5, 1.0)))
        cv2.rectangle(mask, (x, (y1 - y0 - size) // 2), (x + w, (y1 - y0 + size) // 2), 255, max(1, size // 4))
        x += w + max(1, size // 3) + (size if rng.random() < 0.15 else 0)
    _paint(canvas[y0:y1, x0:x1], cv2.GaussianBlur(mask, (0, 0), 0.6), ink)


def _compose(text: str, rng: np.random.Generator, ppm: float, degrade: float, colour: str = "blue"
             ) -> tuple[np.ndarray, np.ndarray]:
    """The plate (and the holder around it) drawn flat at ``ppm`` px/mm: float32 BGRA canvas, plate corners.
    ``colour``: blue (white characters), yellow (black) or green (black, 8 characters).

    The alpha channel is 1 everywhere; warping it later gives the plate's soft edge in the photo.
    """
    plate_w, char_w, spacing, gap = _LAYOUT[len(text)]
    px = lambda mm: int(round(mm * ppm))  # noqa: E731
    sub = lambda mm: int(round(mm * ppm * 16))  # noqa: E731  (1/16 px, for cv2's shift=4 drawing)
    side, top = rng.uniform(0, 9) * (rng.random() < 0.6), rng.uniform(0, 9)
    bottom = rng.uniform(0, 22) if rng.random() < 0.5 else rng.uniform(0, 8)
    ox, oy, pw, ph = px(side), px(top), px(plate_w), px(_PLATE_H)
    h, w = oy + ph + px(bottom), 2 * ox + pw
    holder = _hsv(rng.uniform(0, 180), rng.uniform(0, 60),
                  rng.uniform(10, 90) if rng.random() < 0.8 else rng.uniform(120, 230))
    canvas = _gradient(h, w, holder, holder * rng.uniform(0.7, 1.3))  # the plate holder, or the car
    green = colour == "green"
    if green:  # new-energy green: light at the top, green at the bottom, black characters
        light = _hsv(rng.uniform(45, 70), rng.uniform(0, 50), rng.uniform(220, 255))  # near white
        dark = _hsv(rng.uniform(55, 75), rng.uniform(120, 220), rng.uniform(170, 235))
        if rng.random() < 0.1:
            light, dark = dark, light
        canvas[oy:oy + ph, ox:ox + pw] = _gradient(ph, pw, light, dark, rng.uniform(0.7, 1.5))
        if is_large_new_energy(text):  # a large vehicle's: yellow under the province and city letter
            split = ox + px(_text_left(8) + 2 * char_w + gap / 2)
            paint = _yellow(rng)
            canvas[oy:oy + ph, ox:split] = _gradient(ph, split - ox, paint, paint)
        ink = np.full(3, rng.uniform(5, 45), np.float32)
    elif colour == "yellow":  # yellow, black characters (GA 36: large vehicles' front plates)
        paint = _yellow(rng)
        shade = rng.uniform(-0.05, 0.05)
        canvas[oy:oy + ph, ox:ox + pw] = _gradient(ph, pw, paint * (1 - shade), paint * (1 + shade))
        ink = np.full(3, rng.uniform(5, 50), np.float32)
    else:  # blue, white characters
        paint = _hsv(rng.uniform(105, 116), rng.uniform(215, 255), rng.uniform(160, 245))
        shade = rng.uniform(-0.04, 0.04)
        canvas[oy:oy + ph, ox:ox + pw] = _gradient(ph, pw, paint * (1 - shade), paint * (1 + shade))
        ink = rng.uniform(215, 255) + rng.uniform(-12, 12, 3).astype(np.float32)
    # the ink: characters, the dot after a blue plate's city letter, the frame line inset from the plate edge
    ink_alpha = np.zeros((h, w), np.uint8)
    font = PLATE_FONT if rng.random() < _PLATE_FONT_SHARE else FONTS[rng.integers(len(FONTS))]
    # stroke widths per colour (glyphs.WEIGHTS): green thinnest, yellow boldest (0.130 of the character height
    # against 0.116 for blue plates from the same road cameras: Otsu masks of real-crops-lyl8213's train split)
    weight = WEIGHTS[rng.integers(3)] if green else WEIGHTS[3 + rng.integers(2)] if colour == "yellow" else \
        WEIGHTS[2 + rng.integers(2)]
    atlas = glyphs.atlas(font, weight, ppm)
    x = _text_left(len(text))
    centres = []
    one = "1^" if green else ("1|" if rng.random() < 0.5 else "1")  # green plates' 1 has a flag, blue's none
    jitter = rng.normal(0, 0.8 * degrade, (len(text), 2))  # mm
    for i, ch in enumerate(text):
        mask = atlas[one if ch == "1" else ch]
        jx, jy = jitter[i]
        centres.append(x + char_w / 2)
        top_left = (oy + px(_CHAR_TOP + jy), ox + px(centres[-1] + jx) - mask.shape[1] // 2)
        ink_alpha[top_left[0]:top_left[0] + mask.shape[0], top_left[1]:top_left[1] + mask.shape[1]] = mask
        x += char_w + (gap if i == 1 else spacing)
    if not green:  # green plates leave the gap after the city letter empty
        dot_x = centres[1] + char_w / 2 + gap / 2
        cv2.circle(ink_alpha, (16 * ox + sub(dot_x), 16 * oy + sub(_PLATE_H / 2)), sub(5.5), 255, -1, cv2.LINE_AA, 4)
    inset, thick = rng.uniform(2.0, 4.5), max(1, px(rng.uniform(1.2, 2.5)))
    cv2.rectangle(ink_alpha, (ox + px(inset), oy + px(inset)), (ox + pw - 1 - px(inset), oy + ph - 1 - px(inset)),
                  255, thick, cv2.LINE_AA)
    _paint(canvas, ink_alpha, ink)
    # rivets at the 2nd and 6th characters, near the top (and sometimes the bottom)
    if rng.random() < 0.8:
        metal = float(rng.uniform(90, 230))
        for row in [13.0] + ([_PLATE_H - 13.0] if rng.random() < 0.4 else []):
            y0, y1 = max(0, oy + px(row - 9)), min(h, oy + px(row + 9) + 2)  # paint just this band of rows
            heads = [(16 * ox + sub(cx + rng.normal(0, 2)), 16 * (oy - y0) + sub(row)) for cx in centres[1:6:4]]
            for radius, shade in ((8.0, 0.55), (5.5, 1.0)):  # a dark rim, then the head
                mask = np.zeros((y1 - y0, w), np.uint8)
                for centre in heads:
                    cv2.circle(mask, centre, sub(radius), 255, -1, cv2.LINE_AA, 4)
                _paint(canvas[y0:y1], mask, np.full(3, metal * shade, np.float32))
    # dirt: a few dark smudges of low opacity
    if rng.random() < 0.35 * degrade:
        smudge = np.zeros((h, w), np.float32)
        for _ in range(rng.integers(1, 5)):
            centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            axes = (max(1, px(rng.uniform(5, 60))), max(1, px(rng.uniform(3, 25))))
            cv2.ellipse(smudge, centre, axes, rng.uniform(0, 180), 0, 360, float(rng.uniform(0.1, 0.4)), -1)
        smudge = cv2.GaussianBlur(smudge, (0, 0), max(0.5, px(4))) * min(1.0, degrade)
        _paint(canvas, smudge, _hsv(rng.uniform(5, 25), rng.uniform(40, 160), rng.uniform(30, 90)))
    if rng.random() < 0.3 * min(1.0, degrade) and bottom > 6:  # a dealer's small print on the holder
        _holder_print(canvas, rng, (ox, oy + ph + px(1.5), ox + pw, h - px(1.0)),
                      np.full(3, rng.uniform(150, 255) if holder.mean() < 100 else rng.uniform(0, 60), np.float32))
    corners = np.float32([[ox, oy], [ox + pw, oy], [ox + pw, oy + ph], [ox, oy + ph]])
    return canvas, corners


# --- placing it in a photo ------------------------------------------------------------------------------


CUT = (0.05, 0.08)  # a box crop cut inside the plate's box: share of the box's width cut off, mostly one side


def _placement(rng: np.random.Generator, aspect: float, degrade: float, box_clip: float = 0.0
               ) -> tuple[np.ndarray, tuple[int, int]]:
    """Where the plate's corners (tl, tr, br, bl) land in the crop, and the crop's (width, height)."""
    d = degrade
    width = float(np.exp(rng.uniform(np.log(55), np.log(300))))
    height = width / (aspect * float(np.exp(np.clip(rng.normal(0.08, 0.14 * d), -0.45, 0.45))))
    quad = np.float64([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [width / 2, height / 2]
    yaw, pitch = np.clip(rng.normal(0, [0.07 * d, 0.04 * d]), -0.3, 0.3)
    if rng.random() < 0.2 * min(1.0, d):  # a camera well off to one side (CCPD's tilt subset)
        yaw = rng.uniform(-0.3, 0.3)
    quad[:, 1] *= 1 + yaw * np.sign(quad[:, 0])  # one side nearer the camera than the other
    quad[:, 0] *= 1 + pitch * np.sign(quad[:, 1])
    quad[:, 0] += np.clip(rng.normal(0, 0.12 * d), -0.45, 0.45) * quad[:, 1]  # shear: slanted sides
    # mostly level; a quarter turned by up to 25 degrees (CCPD's rotate subset)
    angle = np.radians(rng.normal(0, 5 * d) if rng.random() < 0.75 else rng.uniform(-25, 25) * d)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    quad = quad @ rot.T + rng.normal(0, 0.012 * d * width, (4, 2))
    lo, hi = quad.min(0), quad.max(0)
    box_w, box_h = hi - lo
    # crop = the plate's bounding box plus margins: mostly tight like CCPD's boxes (plate 90-100 % of the
    # width), sometimes loose (down to 62 %), and on a fifth of the plates cut inside the box by up to 8 % (meant to
    # clip the first or last character as the dl1 crops of tilted plates do; the box's slack around a tilted plate
    # leaves them whole). ``box_clip``: that share of the plates cut on one side by CUT of the box's width instead,
    # clipping a character on 8 % of plates at 0.2 (tests/test_synth.py measures how many and how much)
    loose = rng.uniform(0.0, 0.11) if rng.random() < 0.85 else rng.uniform(0.11, 0.6)
    loose = loose * min(1.0, d) if d > 0 else 0.04
    clip = box_clip > 0 and rng.random() < box_clip * min(1.0, d)
    if clip:
        margin_x = -box_w * rng.uniform(CUT[0], CUT[1])
    elif box_clip > 0:  # beside the clipped crops, a slight cut
        margin_x = box_w * (loose + rng.uniform(-0.02, 0.0) * min(1.0, d))
    else:  # a fifth cut by up to 8 %, which a tilted plate's slack leaves unclipped
        cut = rng.uniform(-0.08, 0.0) if rng.random() < 0.2 else rng.uniform(-0.02, 0.0)
        margin_x = box_w * (loose + cut * min(1.0, d))
    margin_y = box_h * max(-0.06, loose + rng.uniform(-0.06, 0.06) * min(1.0, d))
    if clip:  # the cut on one side
        left = margin_x * (rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0))
    else:
        left = margin_x * rng.uniform(0.2, 0.8)
    up = margin_y * rng.uniform(0.2, 0.8)
    quad -= lo - [left, up]
    size = (max(16, round(box_w + margin_x)), max(8, round(box_h + margin_y)))
    return quad.astype(np.float32), size


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Car body, grille or road behind the plate: a colour with smooth random texture."""
    kind = rng.random()
    if kind < 0.45:  # car paint, often white, silver or black
        color = _hsv(rng.uniform(0, 180), rng.uniform(0, 40) if rng.random() < 0.6 else rng.uniform(40, 150),
                     rng.uniform(20, 245))
    else:  # bumper plastic, grille, road
        color = _hsv(rng.uniform(0, 180), rng.uniform(0, 35), rng.uniform(15, 150))
    blotches = color + rng.normal(0, rng.uniform(8, 40), (3, 6, 1)) * rng.uniform(0.7, 1.0, (3, 6, 3))
    image = cv2.resize(blotches.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.25:  # horizontal bars: grille or bumper edges
        rows = np.sin(np.arange(h, dtype=np.float32) * (2 * np.pi / rng.uniform(3, 12))) > 0
        shade = np.where(rows, np.float32(1), np.float32(rng.uniform(0.4, 0.8)))
        image *= cv2.resize(np.repeat(shade[:, None, None], 3, axis=2), (w, h), interpolation=cv2.INTER_NEAREST)
    return image


def render_plate(text: str, rng: np.random.Generator, degrade: float = 1.0, rectified: bool = False,
                 colour: str | None = None, adverse: bool = False, box_clip: float = 0.0) -> np.ndarray:
    """A photo-like crop of the plate ``text``, as the CCPD2019-dl1 crops show plates: HxWx3 uint8 BGR.

    The plate (70-300 px wide in the crop) is drawn at about that resolution, placed over a car or road
    background by one perspective warp (tilt, rotation, shear, crop margins), then, scaled by ``degrade``,
    recoloured (white balance, saturation, contrast), lit unevenly (ramp, vignette, shadow band), blurred
    (focus, motion, low resolution) or sharpened, noised and JPEG-compressed. ``degrade=0`` draws it clean.

    ``rectified=True`` then cuts the plate out as ``sources.CcpdPhotos`` does with CCPD2019 photos: a
    perspective warp from its four corners (moved by a few pixels, as hand annotation is) to 220x70.
    ``colour``: ``blue`` or ``yellow`` for 7 characters (default blue), ``green`` for 8 (the default there).
    ``adverse=True`` adds one adverse condition (``degrade.adverse``: low light, glare, haze, rain…).
    ``box_clip``: the chance of a crop cut inside the plate's box on one side, clipping a character (``_placement``).
    """
    check_plate(text)
    if degrade < 0:
        raise ValueError(f"degrade must be >= 0 (0 = clean renders), got {degrade}")
    colour = colour or ("green" if len(text) == 8 else "blue")
    if (colour == "green") != (len(text) == 8):
        raise ValueError(f"{colour} plates have {8 if colour == 'green' else 7} characters; {text!r} has {len(text)}")
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    d = float(degrade)
    plate_w = _LAYOUT[len(text)][0]
    quad, (w, h) = _placement(rng, plate_w / _PLATE_H, d, box_clip)
    shown = float(np.linalg.norm(quad[1] - quad[0]))
    ppm = next((lv for lv in _LEVELS if lv * plate_w >= shown), _LEVELS[-1])
    canvas, corners = _compose(text, rng, ppm, d, colour)
    warp = cv2.getPerspectiveTransform(corners, quad)
    plate = cv2.warpPerspective(canvas, warp, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    # the warp's zero border makes ``plate`` premultiplied by its alpha: over = plate + (1 - alpha) * behind
    opacity = cv2.cvtColor(cv2.extractChannel(plate, 3), cv2.COLOR_GRAY2BGR)
    image = cv2.cvtColor(plate, cv2.COLOR_BGRA2BGR) + (1 - opacity) * _background(rng, w, h)
    if d > 0:
        image = cv2.transform(image, degrade_.colour_matrix(rng, d, float(np.mean(cv2.mean(image)[:3]))))
        image *= cv2.cvtColor(degrade_.lighting(rng, w, h, d), cv2.COLOR_GRAY2BGR)
        # blur: out of focus, motion, a low-resolution camera; or an over-sharpened one
        if rng.random() < 0.35 * min(1.0, d):
            strength = rng.uniform(0.1, 0.5) if rng.random() < 0.85 else rng.uniform(0.5, 1.0)
            image = cv2.GaussianBlur(image, (0, 0), max(0.3, strength * d * shown / 100))
        if rng.random() < 0.15 * min(1.0, d):
            image = cv2.filter2D(image, -1, degrade_.motion_kernel(rng.uniform(2, 2 + 0.04 * d * shown),
                                                                   rng.uniform(0, np.pi)))
        if rng.random() < 0.15 * min(1.0, d):
            f = rng.uniform(0.4, 0.85)
            small = cv2.resize(image, (max(4, round(w * f)), max(4, round(h * f))), interpolation=cv2.INTER_AREA)
            image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        elif rng.random() < 0.5 * min(1.0, d):
            image += (image - cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 1.5))) * rng.uniform(0.3, 1.2)
        if rng.random() < 0.6:
            image += degrade_.noise(rng, w, h) * np.float32(rng.uniform(1, 9) * d)
        if adverse:
            image = degrade_.adverse(image, rng, d)[0]
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    if rng.random() < 0.4 * min(1.0, d):  # the source photo was a JPEG already
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 70))])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if rectified:  # annotated corners are off by ~1-2 % of the plate's size
        quad = quad + rng.normal(0, 0.012 * max(d, 0.3), (4, 2)) * [shown, shown * _PLATE_H / plate_w]
        if rng.random() < 0.3 * min(1.0, d):  # a tighter cut, as road cameras' aligned crops are: the
            u, v = (quad[1] - quad[0] + quad[2] - quad[3]) / 2, (quad[3] - quad[0] + quad[2] - quad[1]) / 2
            su, sv = rng.uniform(0, 0.04), rng.uniform(0.02, 0.12)  # characters fill most of the height
            quad = quad + np.float32([su * u + sv * v, -su * u + sv * v, -su * u - sv * v, su * u - sv * v])
        image = rectify(image, quad[[2, 3, 0, 1]])  # tl, tr, br, bl -> br, bl, tl, tr
    return image


# --- the dataset ----------------------------------------------------------------------------------------

SPLITS = ("train", "test")
GENERATOR_VERSION = 10  # bump when a change to the drawing code changes the plates a config gives


def _plate(seed: int, split: int, i: int, cfg: SynthConfig) -> tuple[np.ndarray, str, np.random.Generator]:
    rng = np.random.default_rng([seed, split, i])
    draw = rng.random()
    colour = "green" if draw < cfg.green_fraction else \
        "yellow" if draw < cfg.green_fraction + cfg.yellow_fraction else "blue"
    balanced = SPLITS[split] == "test" and cfg.test_balanced  # every province equally often
    text = sample_plate(rng, green=colour == "green", province_flatten=1.0 if balanced else cfg.province_flatten,
                        home_share=None if balanced else cfg.home_share, new_energy_letters=cfg.new_energy_letters,
                        large_share=cfg.large_new_energy)
    rectified = bool(rng.random() < cfg.rectified_fraction)
    adverse = bool(rng.random() < cfg.adverse_fraction)
    return render_plate(text, rng, cfg.degrade, rectified, colour, adverse, cfg.box_clip), text, rng


def iter_plates(n: int, seed: int = 0, split: str = "train", cfg: SynthConfig = SynthConfig()
                ) -> Iterator[tuple[np.ndarray, str]]:
    """Plates 0..n-1 of ``split`` as ``(BGR crop, text)``, exactly those ``generate_zip`` stores (before JPEG).

    ``seed`` replaces ``cfg.seed``; the other fields of ``cfg`` (green share, provinces, degrade) apply.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    for i in range(n):
        image, text, _ = _plate(seed, SPLITS.index(split), i, cfg)
        yield image, text


def _encode_chunk(job: tuple[SynthConfig, int, int, int]) -> list[tuple[str, bytes]]:
    cfg, split, start, stop = job
    n = cfg.n_train if split == 0 else cfg.n_test
    digits = max(6, len(str(n - 1)))
    out = []
    for i in range(start, stop):
        image, text, rng = _plate(cfg.seed, split, i, cfg)
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode synthetic plate {i} ({text}) as JPEG")
        out.append((f"synthetic/{SPLITS[split]}/{i:0{digits}d}-{text}.jpg", buf.tobytes()))
    return out


def _init_worker(table: dict[tuple[str, float], dict[str, np.ndarray]]) -> None:
    cv2.setNumThreads(1)  # the processes share the cores already
    glyphs.preload(table)


def _pool(workers: int) -> mp.pool.Pool:
    """A pool of fresh processes: forking a process whose OpenCV (or torch) threads ran can deadlock."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # the server imports us once, each worker starts in ms
    else:
        ctx = mp.get_context("spawn")
    table = {(font, weight): glyphs.glyphs(font, weight) for font in (PLATE_FONT, *FONTS) for weight in WEIGHTS}
    return ctx.Pool(workers, initializer=_init_worker, initargs=(table,))


def _zip_entry(name: str) -> zipfile.ZipInfo:
    """A stored entry with a fixed date and attributes, so equal contents give equal zips."""
    info = zipfile.ZipInfo(name, date_time=(2019, 1, 1, 0, 0, 0))
    info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_STORED, 3, 0o644 << 16
    return info


def settings_key(cfg: SynthConfig) -> str:
    """What decides a zip's contents (everything but ``workers``), as JSON: stored as the zip's comment."""
    return json.dumps({"generator": GENERATOR_VERSION, **cfg.model_dump(exclude={"workers"}, mode="json")},
                      sort_keys=True)


def zip_settings(path: str | os.PathLike) -> str | None:
    """The ``settings_key`` a zip was generated with, or None (not a zip of ours, or not readable)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.comment.decode("utf-8") or None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):
        return None


def generate_zip(out: str | os.PathLike, cfg: SynthConfig = SynthConfig(), progress: bool = True) -> Path:
    """Write ``cfg.n_train + cfg.n_test`` synthetic crops to the zip ``out`` in the CCPD2019-dl1 layout.

    The zip is written to a temporary file beside ``out`` and moved into place once complete. Entries are
    stored uncompressed with a fixed date, so the same ``cfg`` gives the same bytes for any ``workers``; the
    zip's comment is ``settings_key(cfg)``, so a changed config is noticed (``dataset.resolve_source``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    glyphs.glyphs(FONTS[0], WEIGHTS[0])  # fail early, naming a missing font
    chunk = 64
    jobs = [(cfg, split, start, min(start + chunk, n))
            for split, n in enumerate((cfg.n_train, cfg.n_test)) for start in range(0, n, chunk)]
    workers = min(cfg.workers or os.cpu_count() or 1, len(jobs))
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    pool = None
    try:
        pool = _pool(workers) if workers > 1 else None
        chunks = pool.imap(_encode_chunk, jobs) if pool else map(_encode_chunk, jobs)
        bar = tqdm(total=cfg.n_train + cfg.n_test, desc="synthetic plates", unit="plate", disable=not progress)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf, bar:
            zf.comment = settings_key(cfg).encode("utf-8")
            for entries in chunks:
                for name, data in entries:
                    zf.writestr(_zip_entry(name), data)
                bar.update(len(entries))
        os.chmod(tmp, 0o644)  # mkstemp made it private
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if pool:
            pool.terminate()
            pool.join()
    return out
