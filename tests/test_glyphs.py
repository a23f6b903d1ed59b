"""Glyphs: the plate typeface covers every plate character in the plate's character box, in the plate's shapes."""

import numpy as np
import pytest

from plate_lib import glyphs
from plate_lib.plates import PROVINCES


def test_the_plate_typeface_draws_every_letter_and_digit():
    assert set(glyphs.STROKES) == set(glyphs.LETTERS + glyphs.DIGITS) | {"1^"}


def test_strokes_are_cut_square_where_they_meet_the_box():
    k = glyphs.stroke_glyph("K", 0.13) > 127
    t = glyphs.stroke_glyph("T", 0.13) > 127
    assert k[0, -20:].sum() >= 15  # the arm's top end is cut along the top edge, not rounded off
    assert k[-1, -20:].sum() >= 15  # and so is the leg's foot
    assert t[:20, 0].all()  # the T's bar ends square at the left edge


def test_round_letters_keep_their_round_outline():
    o = glyphs.stroke_glyph("0", 0.13) > 127
    assert not o[0, :5].any() and not o[0, -5:].any()


def test_green_plates_1_carries_a_flag_and_blue_plates_1_none():
    flagged, bare = (glyphs.stroke_glyph(ch, 0.13) > 127 for ch in ("1^", "1"))
    upper_left = (slice(10, 40), slice(0, 30))
    assert flagged[upper_left].sum() > 100 and bare[upper_left].sum() == 0


@pytest.mark.parametrize("font", [glyphs.PLATE_FONT, *glyphs.FONTS])
def test_province_strokes_are_about_half_as_wide_as_latin_ones(font):
    # measured on real plates: 0.056 vs 0.108 of the character height (the 60 sharpest CCPD sample crops)
    table = glyphs.render_glyphs(font, glyphs.WEIGHTS[2])
    ratio = glyphs._stroke_width(table["皖"]) / glyphs._stroke_width(table["H"])
    assert 0.4 < ratio < 0.65


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
