"""Colours: a crop's plate colour by the hue of its plate background, and the plate length that colour issues."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from plate_lib.colours import colour_length, colour_lengths, plate_colour
from plate_lib.synth import render_plate

LYL8213 = SHARED_DATA / "real-crops-lyl8213"
COLOURS_CSV = Path(__file__).resolve().parents[1] / "benchmarks" / "lyl8213-colours.csv"


def _patch(bgr: tuple[int, int, int], w: int = 140, h: int = 44) -> np.ndarray:
    return np.full((h, w, 3), bgr, np.uint8)


@pytest.mark.parametrize("bgr, colour", [
    ((200, 80, 20), "blue"), ((140, 40, 10), "blue"), ((40, 180, 220), "yellow"), ((20, 120, 150), "yellow"),
    ((60, 200, 60), "green"), ((128, 128, 128), "unknown"), ((30, 30, 30), "unknown"), ((60, 60, 220), "unknown"),
], ids=["blue", "dark-blue", "yellow", "dim-yellow", "green", "grey", "night", "red"])
def test_plate_colour_is_the_hue_of_the_coloured_pixels(bgr, colour):
    assert plate_colour(_patch(bgr)) == colour


def test_plate_colour_looks_at_the_plate_not_the_margins_or_the_characters():
    crop = _patch((200, 80, 20))  # blue plate
    crop[:, :14] = crop[:, -14:] = (40, 180, 220)  # yellow car body left and right, outside the central band
    crop[16:28, 20:120:10] = (255, 255, 255)  # white character strokes: not coloured, not counted
    assert plate_colour(crop) == "blue"


@pytest.mark.parametrize("text, colour", [("苏E12345", "blue"), ("苏E12345", "yellow"), ("苏ED12345", "green")])
def test_rendered_plates_get_their_colour(text, colour):
    rng = np.random.default_rng(3)
    for rectified in (False, True):
        assert plate_colour(render_plate(text, rng, 0.0, rectified, colour)) == colour


@pytest.mark.parametrize("shape", [(24, 94), (36, 136), (70, 220), (258, 800)])
def test_plate_colour_reads_crops_of_any_size_and_no_colour_from_an_empty_or_grey_one(shape):
    assert plate_colour(_patch((200, 80, 20), shape[1], shape[0])) == "blue"
    assert plate_colour(np.zeros((1, 1, 3), np.uint8)) == "unknown"  # no central band at all
    assert plate_colour(np.full(shape, 128, np.uint8)) == "unknown"  # a grayscale crop


def test_the_length_a_colour_issues_is_7_for_blue_and_8_for_green_and_unsaid_otherwise():
    assert colour_length(_patch((200, 80, 20))) == 7
    assert colour_length(_patch((60, 200, 60))) == 8
    assert colour_length(_patch((40, 180, 220))) == 0  # a large vehicle's new-energy plate is yellow at its left
    assert colour_length(_patch((30, 30, 30))) == 0


def test_a_band_of_mixed_colours_says_no_length_even_where_its_median_is_green():
    crop = _patch((200, 80, 20))  # a blue plate
    crop[:, :80] = (60, 200, 60)  # under a green cast over more than half its band
    assert plate_colour(crop) == "green"  # the median hue (plate predict's kind, for 8 characters only)
    assert colour_length(crop) == 0  # not the 80 % (colours.DECISIVE) that would change a reading
    crop[:, :70] = (200, 80, 20)  # green on a tenth of the band (columns 70-79 of its 14-125)
    assert colour_length(crop) == 7


def test_the_lengths_of_many_crops_at_once_are_each_crops_own():
    rng = np.random.default_rng(5)
    crops = [render_plate("苏ED12345", rng, 1.0, bool(i % 2), "green") for i in range(4)] + \
        [render_plate("苏E12345", rng, 1.0, bool(i % 2), c) for i, c in enumerate(["blue", "yellow"] * 2)] + \
        [np.zeros((1, 1, 3), np.uint8), _patch((30, 30, 30), 60, 20)]
    assert colour_lengths(crops).tolist() == [colour_length(c) for c in crops]
    assert colour_lengths([]).tolist() == []


@pytest.mark.skipif(not LYL8213.is_dir(), reason=f"real-crops-lyl8213 not found at {LYL8213} (../shared is absent)")
def test_plate_colour_tells_the_hand_labelled_yellow_street_crops_from_the_blue_ones():
    labels = dict(row.values() for row in csv.DictReader(COLOURS_CSV.open(encoding="utf-8")))
    said = {name: plate_colour(cv2.imread(str(LYL8213 / name))) for name in labels}
    confused = [n for n, c in said.items() if c != "unknown" and c != labels[n]]
    assert confused == []
    yellow = [n for n in labels if labels[n] == "yellow"]
    assert len(yellow) == 173 and all(said[n] == "yellow" for n in yellow)
    assert sum(c == "unknown" for c in said.values()) <= 0.03 * len(said)  # grey night crops: colour not clear
