"""Glyphs: the plate typeface covers every plate character in the plate's character box, in the plate's shapes."""

import numpy as np
import pytest

from plate_lib import glyphs
from plate_lib.plates import PROVINCES


def test_the_plate_typeface_draws_every_letter_and_digit():
    assert set(glyphs.STROKES) == set(glyphs.LETTERS + glyphs.DIGITS)


@pytest.mark.parametrize("font", [glyphs.PLATE_FONT, *glyphs.FONTS])
def test_every_plate_character_fits_the_45_by_90_mm_box(font):
    table = glyphs.render_glyphs(font, glyphs.WEIGHTS[1])
    height, width = round(glyphs.CHAR_H * glyphs.CANON), round(glyphs.CHAR_W * glyphs.CANON)
    assert set(PROVINCES + list(glyphs.LETTERS + glyphs.DIGITS)) <= set(table)
    for ch, mask in table.items():
        assert mask.dtype == np.uint8 and mask.shape[0] == height and mask.shape[1] <= width, ch
        assert mask.max() == 255, ch


def test_the_plate_3_has_a_flat_top_where_fonts_curve():
    plate = glyphs.stroke_glyph("3", 0.13) > 127
    font = glyphs.render_glyphs(glyphs.FONTS[0], 0.13)["3"] > 127
    top = slice(0, 12)  # the top 6 mm
    assert plate[top].all(axis=0).mean() > 0.6  # a bar across
    assert font[top].all(axis=0).mean() < 0.3  # an arch


def test_the_plate_m_meets_halfway_down():
    m = glyphs.stroke_glyph("M", 0.13) > 127
    centre = m[:, m.shape[1] // 2]
    lowest = np.nonzero(centre)[0].max()
    assert 0.45 < lowest / len(centre) < 0.7  # the V's point, not the baseline as in most fonts


def test_stroke_width_follows_the_weight():
    thin, bold = (glyphs.stroke_glyph("H", w).astype(float).sum() for w in (0.10, 0.155))
    assert bold > 1.3 * thin
