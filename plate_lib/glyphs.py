"""Glyphs: the characters the synthetic plates are drawn with, as uint8 alpha masks.

Two kinds, mixed per plate by ``synth``:

- ``PLATE_FONT``: letters and digits drawn from stroke centre lines in the shapes of the GA 36 plate
  typeface (a flat-topped 3, an M whose V reaches halfway down, a W with a tall middle peak, stadium 0/O/Q,
  a G with a spur). No installable font has them, and a model trained on ordinary fonts alone read every real
  3 as 5 (199 of 207 in the 622 CCPD sample photos). Provinces come from SimHei.
- ``FONTS``: TrueType/OpenType fonts of the ``mplfonts`` package (Noto Sans CJK, SimHei, Noto Sans Mono CJK),
  squeezed into the plate's character box and thickened to plate strokes, for variety.

Masks are kept at ``CANON`` px/mm in the 45x90 mm character box (GA 36-2018) and shrunk per plate resolution.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .plates import PROVINCES

DIGITS = "0123456789"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # plates never use I or O

CHAR_W, CHAR_H = 45.0, 90.0  # mm
CANON = 2.0  # glyphs are kept at 2 px/mm before being shrunk to plate resolution
PLATE_FONT = "plate"
PLATE_PROVINCES = "SimHei.ttf"  # the font PLATE_FONT takes its province characters from
FONTS = ("NotoSansCJKsc-Regular.otf", "SimHei.ttf", "NotoSansMonoCJKsc-Regular.otf")
"""Fonts from the ``mplfonts`` package, the alternatives to ``PLATE_FONT``."""
WEIGHTS = (0.07, 0.09, 0.11, 0.13, 0.15)  # Latin stroke width as a share of character height. GA 36 draws 10 mm
# of 90; measured with Otsu masks: 0.108 on blue plates (median, IQR 0.097-0.114, the 60 sharpest CCPD sample
# crops), 0.05-0.08 on the two sharp green sample plates; on real-crops-lyl8213's train split, yellow plates
# 0.130 against 0.116 for blue ones from the same cameras. synth draws green plates at the first three, blue at
# 0.11-0.13, yellow at 0.13-0.15
CJK_STROKE = 0.5  # province strokes as a share of the Latin stroke: 0.056 vs 0.108 of the character height,
# medians over the 60 sharpest CCPD sample crops (Otsu masks); at 0.75 real, crisp 皖 read as 沪 or 京
_THIN = {"W": 0.7}  # the plate typeface draws W's strokes thinner, or its four strokes close up


def font_path(name: str) -> Path:
    try:
        folder = Path(str(resources.files("mplfonts") / "fonts"))
    except ModuleNotFoundError:
        raise RuntimeError("synthetic plates need the fonts of the mplfonts package: pip install mplfonts") from None
    path = folder / name
    if not path.is_file():
        raise RuntimeError(f"font {name} not found in {folder}; reinstall the mplfonts package "
                           "(pip install --force-reinstall mplfonts)")
    return path


# --- the plate typeface, as stroke centre lines ---------------------------------------------------------
# Coordinates in mm for a 10 mm stroke: centre lines span x 5..40, y 5..85 (y down). ``_arc`` points run
# from angle a0 to a1 in degrees (0 = right, 90 = down, as OpenCV draws), so arcs can turn either way.

def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list[tuple[float, float]]:
    t = np.radians(np.linspace(a0, a1, max(2, int(abs(a1 - a0) / 10) + 1)))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


_STADIUM = [_arc(22.5, 22.5, 17.5, 17.5, 180, 360) + _arc(22.5, 67.5, 17.5, 17.5, 0, 180) + [(5, 22.5)]]
_C = _arc(22.5, 22.5, 17.5, 17.5, 330, 180) + _arc(22.5, 67.5, 17.5, 17.5, 180, 30)
_P = [(5, 85), (5, 5), (24, 5)] + _arc(24, 25, 16, 20, 270, 450) + [(5, 45)]

STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "0": _STADIUM,
    "1": [[(22.5, 5), (22.5, 85)]],
    "1^": [[(13, 16), (22.5, 5), (22.5, 85)]],  # green plates' 1 carries a small flag
    "2": [_arc(22.5, 23, 17.5, 18, 190, 375) + [(5, 85), (40, 85)]],
    "3": [[(5, 5), (40, 5), (19, 40)] + _arc(22.5, 62, 17.5, 22.5, -100, 155)],
    "4": [[(31, 85), (31, 5), (5, 62), (42, 62)]],
    "5": [[(38, 5), (7, 5), (6, 42)] + _arc(22.5, 61, 17.5, 23, -155, 155)],
    "6": [_arc(22.5, 22, 17.5, 17, 340, 180) + _arc(22.5, 63, 17.5, 22, 180, 540)],
    "7": [[(5, 5), (40, 5), (17, 85)]],
    "8": [_arc(22.5, 25, 15.5, 20, 0, 360), _arc(22.5, 64.5, 17.5, 20.5, 0, 360)],
    "9": [_arc(22.5, 27, 17.5, 22, 0, 360) + _arc(22.5, 68, 17.5, 17, 0, 160)],
    "A": [[(5, 85), (19, 5), (26, 5), (40, 85)], [(10, 60), (35, 60)]],
    "B": [[(5, 5), (5, 85), (25, 85)] + _arc(25, 64.5, 15, 20.5, 90, -90) + [(5, 44), (24, 44)]
          + _arc(24, 24.5, 13, 19.5, 90, -90) + [(5, 5)]],
    "C": [_C],
    "D": [[(20, 5), (5, 5), (5, 85), (20, 85)] + _arc(20, 65, 20, 20, 90, 0) + _arc(20, 25, 20, 20, 0, -90)],
    "E": [[(40, 5), (5, 5), (5, 85), (40, 85)], [(5, 45), (36, 45)]],
    "F": [[(40, 5), (5, 5), (5, 85)], [(5, 45), (36, 45)]],
    "G": [_arc(22.5, 22.5, 17.5, 17.5, 330, 180) + _arc(22.5, 67.5, 17.5, 17.5, 180, 0) + [(40, 48), (24, 48)]],
    "H": [[(5, 5), (5, 85)], [(40, 5), (40, 85)], [(5, 45), (40, 45)]],
    "J": [[(40, 5)] + _arc(22.5, 67.5, 17.5, 17.5, 0, 180) + [(5, 58)]],
    "K": [[(5, 5), (5, 85)], [(40, 5), (5, 63)], [(18, 42), (40, 85)]],  # the arm meets the stem low
    "L": [[(5, 5), (5, 85), (40, 85)]],
    "M": [[(5, 85), (5, 5), (22.5, 47), (40, 5), (40, 85)]],  # a shallow V: its point halfway down
    "N": [[(5, 85), (5, 5), (40, 85), (40, 5)]],
    "P": [_P],
    "Q": _STADIUM + [[(21, 57), (37, 85)]],  # the tail starts near the middle and is cut by the baseline
    "R": [_P, [(22, 45), (40, 85)]],
    "S": [_arc(22.5, 24, 17.5, 19, 340, 90) + _arc(22.5, 64.5, 17.5, 20.5, 270, 520)],
    "T": [[(3, 5), (42, 5)], [(22.5, 5), (22.5, 85)]],
    "U": [[(5, 5)] + _arc(22.5, 67.5, 17.5, 17.5, 180, 0) + [(40, 5)]],
    "V": [[(5, 5), (22.5, 85), (40, 5)]],
    "W": [[(4, 5), (12, 85), (22.5, 14), (33, 85), (41, 5)]],
    "X": [[(5, 5), (40, 85)], [(40, 5), (5, 85)]],
    "Y": [[(5, 5), (22.5, 45), (40, 5)], [(22.5, 45), (22.5, 85)]],
    "Z": [[(5, 5), (40, 5), (5, 85), (40, 85)]],
}


def _flat_ends(line: list[tuple[float, float]], reach: float) -> list[tuple[float, float]]:
    """``line`` with each end that leaves the box (through the side it lies on) carried ``reach`` mm on, so
    the box cuts it square, as the plate typeface cuts its strokes; other ends keep their round caps."""
    pts = [np.array(p, float) for p in line]

    def carry(end: np.ndarray, before: np.ndarray) -> np.ndarray:
        d = end - before
        d /= max(np.linalg.norm(d), 1e-9)
        leaves = (end[1] <= 5 and d[1] < -0.3) or (end[1] >= 85 and d[1] > 0.3) or \
                 (end[0] <= 5 and d[0] < -0.3) or (end[0] >= 40 and d[0] > 0.3)
        return end + d * reach if leaves else end

    if len(pts) > 1 and not np.allclose(pts[0], pts[-1]):
        pts[0], pts[-1] = carry(pts[0], pts[1]), carry(pts[-1], pts[-2])
    return [tuple(p) for p in pts]


def stroke_glyph(ch: str, weight: float) -> np.ndarray:
    """``ch`` in the plate typeface (``"1^"``: the flagged 1 of green plates): a uint8 mask filling the 45x90
    mm box at ``CANON`` px/mm, strokes ``weight`` of the height wide, square where they meet the box."""
    ss = 8  # supersampling, then INTER_AREA down: smooth edges
    scale = CANON * ss
    stroke = weight * CHAR_H * _THIN.get(ch, 1.0)
    canvas = np.zeros((round(CHAR_H * scale), round(CHAR_W * scale)), np.uint8)
    for line in STROKES[ch]:  # centre lines are laid out for a 10 mm stroke: refit them to this one
        pts = [((x - 5) / 35 * (CHAR_W - stroke) + stroke / 2, (y - 5) / 80 * (CHAR_H - stroke) + stroke / 2)
               for x, y in _flat_ends(line, 10.0)]
        cv2.polylines(canvas, [np.round(np.array(pts) * scale).astype(np.int32)], False, 255,
                      max(1, round(stroke * scale)), cv2.LINE_8)
    return cv2.resize(canvas, (round(CHAR_W * CANON), round(CHAR_H * CANON)), interpolation=cv2.INTER_AREA)


# --- fonts ----------------------------------------------------------------------------------------------


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary glyph: twice its area over its outline length."""
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float((mask > 127).sum()) / max(perimeter, 1.0)


_GLYPHS: dict[tuple[str, float], dict[str, np.ndarray]] = {}  # (font, weight) -> render_glyphs, per process


def glyphs(font: str, weight: float) -> dict[str, np.ndarray]:
    """``render_glyphs(font, weight)``, once per process (worker processes are handed them: ``preload``)."""
    if (font, weight) not in _GLYPHS:
        _GLYPHS[font, weight] = render_glyphs(font, weight)
    return _GLYPHS[font, weight]


def preload(table: dict[tuple[str, float], dict[str, np.ndarray]]) -> None:
    _GLYPHS.update(table)


def render_glyphs(font: str, weight: float) -> dict[str, np.ndarray]:
    """Every plate character as a uint8 mask at ``CANON`` px/mm in the 45x90 mm box; Latin strokes are
    ``weight`` of the height (CJK strokes ``CJK_STROKE`` of that). ``font`` is ``PLATE_FONT`` (provinces from
    ``PLATE_PROVINCES``, letters and digits from ``stroke_glyph``) or one of ``FONTS``; the key ``"1|"`` holds
    blue plates' 1, a bare upright bar, and ``"1^"`` green plates' 1, with a flag."""
    if font == PLATE_FONT:
        return glyphs(PLATE_PROVINCES, weight) | {ch: stroke_glyph(ch, weight) for ch in [*LETTERS, *DIGITS, "1^"]}
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(font_path(font)), 220)
    raw = {}
    for ch in PROVINCES + list(LETTERS + DIGITS):
        image = Image.new("L", (320, 320), 0)
        ImageDraw.Draw(image).text((30, 10), ch, font=face, fill=255)
        x0, y0, x1, y1 = image.getbbox()
        raw[ch] = np.asarray(image.crop((x0, y0, x1, y1)))
    ratios = sorted(m.shape[1] / m.shape[0] for c, m in raw.items() if c in "ABDEFGHKNPRSTUVXYZ02345689")
    typical = ratios[len(ratios) // 2]  # glyphs this wide fill the 45 mm box, narrower ones keep their shape
    height, box = round(CHAR_H * CANON), round(CHAR_W * CANON)
    out = {}
    for ch, mask in raw.items():
        cjk = ch in PROVINCES
        width = box if cjk else max(4, round(box * min(1.0, mask.shape[1] / mask.shape[0] / typical)))
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
        grow = (weight * (CJK_STROKE if cjk else 1.0)) * height - _stroke_width(mask)
        if grow >= 2:  # thicken, then shrink back into the box
            k = 2 * round(grow / 2) + 1
            mask = cv2.dilate(cv2.copyMakeBorder(mask, k, k, k, k, cv2.BORDER_CONSTANT, value=0),
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
            mask = cv2.resize(mask[k // 2:-(k // 2), k // 2:-(k // 2)], (width, height), interpolation=cv2.INTER_AREA)
        out[ch] = mask
    out["1|"] = np.full((height, round(weight * height)), 255, np.uint8)
    out["1^"] = out["1"]  # the fonts' own 1s carry a flag already
    return out


@functools.cache
def atlas(font: str, weight: float, ppm: float) -> dict[str, np.ndarray]:
    """The glyphs of ``glyphs`` shrunk to ``ppm`` px/mm (uint8 alpha masks)."""
    scale = ppm / CANON
    return {ch: cv2.resize(m, (max(1, round(m.shape[1] * scale)), max(1, round(m.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
            for ch, m in glyphs(font, weight).items()}
