"""Rectification: find the plate's coloured rectangle inside a crop and warp it level, at a plate's aspect.

Bounding-box crops of tilted plates (how CCPD2019-dl1 cuts its crops) hold the plate at an angle, with background
in the corners and, letterboxed as they are, small characters. Corner-cut crops read almost perfectly. This module
turns the first into something like the second, the way HyperLPR's fine-mapping step does: threshold the plate's
background colour (blue, yellow or green) in HSV, keep the largest connected region, fit a rotated rectangle and
(where it spans the crop; in a loose crop, with car around the plate, the largest region of a plate colour that
is shaped like a plate; both where the spanning region is the whole crop: ``plate_quads``) warp it level at a
plate's 3.14:1 (``rectify``: to 440×140, BGR, as a source's ``rectify`` option gives crops;
``model_input``: straight to the model's input, as the second look reads it). ``inference.read_plates`` reads a
crop as given and, when its least sure character is below ``predict.rectify_below``, again rectified, keeping the
more confident reading, so a failed rectification costs nothing but time (``benchmarks/real_sets.py
--no-rectify`` measures the network alone). In a whole photo (a car, a street), ``photo_boxes`` gives every
plate-shaped region of a plate colour as a box to read (``reading.read_photos``; ``benchmarks/photos.py``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .images import MIN_SIDE
from .preprocess import letterbox

PLATE_SIZE = (440, 140)  # the warp's output: a plate's 440×140 mm at a pixel a mm (measured better than 220×70)
# HSV ranges (OpenCV: hue 0–179) of the plate backgrounds: (hue lo, hue hi, min saturation, min value)
BACKGROUNDS = {"blue": (95, 130, 70, 40), "yellow": (12, 35, 70, 60), "green": (35, 90, 40, 60)}
MIN_FILL = 0.2       # the plate colour must cover this fraction of the crop
MIN_WIDTH = 0.85     # and the fitted rectangle must span this fraction of the crop's width (else: a fragment)
PAD = 0.04           # the rectangle grows by this fraction before warping, so edge characters stay whole
FIND_HEIGHT = 96     # the plate is looked for on a copy at most this tall (faster, and measured better than full size)
# A loose crop (a plate with car around it, as a detector's padded box or a hand's crop) holds no plate colour
# spanning it; there the plate is the largest region of any plate colour shaped like a plate's field:
LOOSE_MIN_AREA = 0.03   # of the crop
LOOSE_MIN_WIDTH = 0.25  # its long side, of the crop's width
LOOSE_ASPECT = (2.0, 6.0)  # long side over short (a blue plate's field about 3.1, a green one's 3.4)
LOOSE_MIN_FILL = 0.6    # of its rotated rectangle (a car's blue panel is seldom a filled rectangle of that shape)
LOOSE_MAX_TILT = 30.0   # degrees of its long side from level
# where the spanning region is (nearly) the whole crop (WHOLE_CROP of it: a car body of a plate colour, or the
# plate of a tight crop), a plate-shaped region inside it of at most LOOSE_MAX_AREA of the crop is the plate
WHOLE_CROP = 0.9
LOOSE_MAX_AREA = 0.5
# A whole photo (``photo_boxes``): plate-shaped regions of a plate colour of at least PHOTO_MIN_AREA of the photo,
# looked for on a copy PHOTO_HEIGHT tall, also at these stricter saturations, the PHOTO_CANDIDATES largest read
# (chosen on the CCPD sample's train and val photos: benchmarks/photos.py)
PHOTO_HEIGHT = 640
PHOTO_MIN_AREA = 0.0002
PHOTO_SATURATIONS = (120, 170)
PHOTO_CANDIDATES = 8
# a new-energy plate's green shades from white at its top: the colour found is its lower part, comb-like between the
# characters (filling less of its rectangle), up to 10 times as long as tall, at saturations above 40, 80 and 120;
# its box is grown up to the plate's own width/height (480×140 mm) (chosen on generated green plates painted into
# the CCPD sample's train and val photos: benchmarks/photos.py --repaint green)
PHOTO_GREEN_ASPECT = (2.0, 10.0)
PHOTO_GREEN_FILL = 0.4
PHOTO_GREEN_SATURATIONS = (80, 120)
PHOTO_GREEN_PLATE = 480 / 140


def _colour_masks(bgr: np.ndarray) -> list[np.ndarray]:
    """uint8 masks (255 = that colour) of each of ``BACKGROUNDS``' plate colours in the crop."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    return [cv2.inRange(hsv, (lo, min_s + 1, min_v + 1), (hi, 255, 255)) for lo, hi, min_s, min_v in BACKGROUNDS.values()]


def plate_mask(bgr: np.ndarray, masks: list[np.ndarray] | None = None) -> np.ndarray | None:
    """uint8 mask (255 = plate) of the crop's dominant plate colour, closed over the characters; None when no
    plate colour covers ``MIN_FILL`` of the crop. ``masks``: the crop's ``_colour_masks``, where already made."""
    mask = max(_colour_masks(bgr) if masks is None else masks, key=cv2.countNonZero)
    rows, cols = bgr.shape[:2]
    if cv2.countNonZero(mask) < MIN_FILL * rows * cols:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, cols // 20) | 1, max(3, rows // 8) | 1))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)


def plate_quads(bgr: np.ndarray) -> list[np.ndarray]:
    """Where the plate may be in the crop, each as float32 [4, 2] corners clockwise from top-left, most likely
    first: the crop's dominant plate colour where it spans the crop (``_spanning_quad``); where that region is the
    whole crop (a tight crop's plate, or a car of a plate colour around a small plate: colour alone cannot tell),
    also the largest plate-shaped region of at most half the crop inside it; where nothing spans the crop, the
    largest region of a plate colour shaped like a plate (``_loose_quad``: a loose crop). Empty when none is there;
    the second look reads each and keeps the most confident reading."""
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        return []  # grey crops carry no colour to find the plate by
    scale = min(1.0, FIND_HEIGHT / bgr.shape[0])
    if scale < 1:  # bilinear: a third of INTER_AREA's time on large crops, as many train/val plates read (docs/experiments.md)
        small = cv2.resize(bgr, (max(1, round(bgr.shape[1] * scale)), FIND_HEIGHT), interpolation=cv2.INTER_LINEAR)
        back = np.array([bgr.shape[1] / small.shape[1], bgr.shape[0] / FIND_HEIGHT], np.float32)
        return [quad * back for quad in plate_quads(small)]
    masks = _colour_masks(bgr)  # once, for both searches
    quad = _spanning_quad(bgr, masks)
    rows, cols = bgr.shape[:2]
    if quad is None:
        loose = _loose_quad(bgr, masks)
        return [] if loose is None else [loose]
    if cv2.contourArea(quad) >= WHOLE_CROP * rows * cols:
        inner = _loose_quad(bgr, masks, max_area=LOOSE_MAX_AREA)
        return [quad] if inner is None else [quad, inner]
    return [quad]


def plate_quad(bgr: np.ndarray) -> np.ndarray | None:
    """The most likely of ``plate_quads``, or None."""
    quads = plate_quads(bgr)
    return quads[0] if quads else None


def _spanning_quad(bgr: np.ndarray, masks: list[np.ndarray]) -> np.ndarray | None:
    """The rotated rectangle of the crop's dominant plate colour (of ``masks``, its ``_colour_masks``) where it
    spans the crop (a tight or bounding-box crop), else None."""
    mask = plate_mask(bgr, masks)
    if mask is None:
        return None
    # the largest region's outline, straight from the mask (labelling the regions first cost twice as long)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rows, cols = mask.shape
    outline = max(contours, key=cv2.contourArea, default=None)
    if outline is None or cv2.contourArea(outline) < MIN_FILL * rows * cols:
        return None
    (cx, cy), (w, h), angle = cv2.minAreaRect(cv2.convexHull(outline))
    box = cv2.boxPoints(((cx, cy), (w * (1 + PAD), h * (1 + PAD)), angle))
    if np.ptp(box[:, 0]) < MIN_WIDTH * cols:
        return None
    quad = _clockwise(box)
    if np.linalg.norm(quad[1] - quad[0]) < np.linalg.norm(quad[3] - quad[0]):
        return None  # taller than wide: not a single-row plate
    return quad


def _loose_quad(bgr: np.ndarray, masks: list[np.ndarray], max_area: float = 1.0) -> np.ndarray | None:
    """In a loose crop, the largest region of any plate colour (``masks``, its ``_colour_masks``) shaped like a
    plate's field (``LOOSE_*``), no larger than ``max_area`` of the crop, as ``plate_quad`` returns it; None where
    none is."""
    rows, cols = bgr.shape[:2]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, cols // 40) | 1, max(3, rows // 16) | 1))
    best, best_area = None, LOOSE_MIN_AREA * rows * cols
    for colour in masks:
        mask = cv2.morphologyEx(colour, cv2.MORPH_CLOSE, kernel)
        for outline in cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]:
            area = cv2.contourArea(outline)
            if area < best_area or area > max_area * rows * cols:
                continue
            quad = _plate_shaped(outline, area, LOOSE_MIN_WIDTH * cols)
            if quad is not None:
                best, best_area = quad, area
    return best


def _plate_shaped(outline: np.ndarray, area: float, min_long: float, aspect: tuple[float, float] = LOOSE_ASPECT,
                  fill: float = LOOSE_MIN_FILL) -> np.ndarray | None:
    """The region ``outline`` (of ``area``) as ``plate_quad`` returns a quad, where it is shaped like a plate's
    field (``aspect``, long side over short; filling ``fill`` of its rotated rectangle; ``LOOSE_MAX_TILT``; its
    long side at least ``min_long`` pixels), else None."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(cv2.convexHull(outline))
    long_side, short_side = max(w, h), max(min(w, h), 1e-6)
    quad = _clockwise(cv2.boxPoints(((cx, cy), (w * (1 + PAD), h * (1 + PAD)), angle)))
    top, left = quad[1] - quad[0], quad[3] - quad[0]
    if (aspect[0] <= long_side / short_side <= aspect[1] and area >= fill * w * h
            and long_side >= min_long and np.linalg.norm(top) >= np.linalg.norm(left)
            and abs(np.degrees(np.arctan2(top[1], top[0]))) <= LOOSE_MAX_TILT):
        return quad
    return None


def photo_boxes(bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Where a plate may be in a whole photo (a car, a street; no annotation), as axis-aligned boxes
    ``(x1, y1, x2, y2)`` in its pixels (end exclusive), at most ``PHOTO_CANDIDATES``, the largest region first:
    every region of a plate colour shaped like a plate's field (``_plate_shaped``) of at least ``PHOTO_MIN_AREA``
    of the photo, looked for on a copy ``PHOTO_HEIGHT`` tall, at the plate colours' own saturation and at each of
    ``PHOTO_SATURATIONS`` (a car or a road tinted the plate's hue, as in an over-exposed or blue-cast photo,
    merges with the plate at the lower one); green ones by ``PHOTO_GREEN_*`` (a new-energy plate is green below,
    white above). Each box is a crop ``reading.read_photos`` reads."""
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        return []
    scale = min(1.0, PHOTO_HEIGHT / bgr.shape[0])
    small = bgr if scale == 1 else cv2.resize(bgr, (max(1, round(bgr.shape[1] * scale)), PHOTO_HEIGHT),
                                              interpolation=cv2.INTER_AREA)
    rows, cols = small.shape[:2]
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, cols // 80) | 1, max(3, rows // 120) | 1))
    found = []
    for colour, (lo, hi, min_s, min_v) in BACKGROUNDS.items():
        green = colour == "green"
        shape = (PHOTO_GREEN_ASPECT, PHOTO_GREEN_FILL) if green else (LOOSE_ASPECT, LOOSE_MIN_FILL)
        for sat in (min_s, *(s for s in (PHOTO_GREEN_SATURATIONS if green else PHOTO_SATURATIONS) if s > min_s)):
            mask = cv2.morphologyEx(cv2.inRange(hsv, (lo, sat + 1, min_v + 1), (hi, 255, 255)), cv2.MORPH_CLOSE, kernel)
            for outline in cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]:
                area = cv2.contourArea(outline)
                quad = _plate_shaped(outline, area, 0, *shape) if area >= PHOTO_MIN_AREA * rows * cols else None
                if quad is not None:
                    found.append((area, quad, green))
    height, width = bgr.shape[:2]
    boxes = []
    for _, quad, green in sorted(found, key=lambda f: -f[0])[:PHOTO_CANDIDATES]:
        (x1, y1), (x2, y2) = quad.min(0), quad.max(0)
        if green:  # the white top of a new-energy plate's gradient is no colour: grow the green to a plate's height
            y1 = min(y1, y2 - (x2 - x1) / PHOTO_GREEN_PLATE)
        x1, y1, x2, y2 = np.floor(x1 / scale), np.floor(y1 / scale), np.ceil(x2 / scale), np.ceil(y2 / scale)
        box = (max(0, int(x1)), max(0, int(y1)), min(width, int(x2) + 1), min(height, int(y2) + 1))
        if min(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE:
            boxes.append(box)
    return boxes


def rectify(bgr: np.ndarray) -> np.ndarray | None:
    """The plate warped level to ``PLATE_SIZE`` (BGR uint8), or None where ``plate_quad`` finds none."""
    quad = plate_quad(bgr)
    return None if quad is None else _warp(bgr, quad, PLATE_SIZE)


def model_inputs(bgr: np.ndarray, height: int, width: int, grayscale: bool) -> list[np.ndarray]:
    """``model_input`` for each of ``plate_quads``: what the second look reads (an empty list: nothing)."""
    return [_model_input(bgr, quad, height, width, grayscale) for quad in plate_quads(bgr)]


def model_input(bgr: np.ndarray, height: int, width: int, grayscale: bool) -> np.ndarray | None:
    """The plate warped level as a model taking ``height`` × ``width`` reads it (``preprocess.letterbox``'s
    [H, W, C] uint8), or None where ``plate_quad`` finds none: what the second look reads.

    Warped (grey first, for a grey model) to twice the size the plate fills in the input, then halved by area
    averaging: no aliasing from large crops, and a third to a fifth of the time of warping to ``PLATE_SIZE`` in
    colour and letterboxing that, reading as many train and val plates (docs/experiments.md, "The rectified second look")."""
    quad = plate_quad(bgr)
    return None if quad is None else _model_input(bgr, quad, height, width, grayscale)


def _model_input(bgr: np.ndarray, quad: np.ndarray, height: int, width: int, grayscale: bool) -> np.ndarray:
    s = min(height / PLATE_SIZE[1], width / PLATE_SIZE[0])
    fitted = max(1, round(PLATE_SIZE[0] * s)), max(1, round(PLATE_SIZE[1] * s))
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if grayscale else bgr
    return letterbox(_warp(grey, quad, (2 * fitted[0], 2 * fitted[1])), height, width, grayscale)


def _warp(img: np.ndarray, quad: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(quad, target), (w, h), borderMode=cv2.BORDER_REPLICATE)


def _clockwise(pts: np.ndarray) -> np.ndarray:
    """Four points ordered top-left, top-right, bottom-right, bottom-left."""
    pts = pts.astype(np.float32)
    total, diff = pts.sum(1), pts[:, 1] - pts[:, 0]
    return np.array([pts[total.argmin()], pts[diff.argmin()], pts[total.argmax()], pts[diff.argmax()]], np.float32)
