"""Synthetic plates: valid labels with CCPD's statistics, photo-like crops, a reproducible dl1-layout zip."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from plate_lib import glyphs, synth
from plate_lib.plates import check_plate, is_issued_format, is_large_new_energy, label_from_filename
from plate_lib.synth import POSITION_COUNTS, SynthConfig, generate_zip, render_plate, sample_plate

STATS = Path(__file__).resolve().parents[2] / "shared/data/ccpd2019-label-stats.json"


def provinces(n: int, flatten: float) -> Counter:
    rng = np.random.default_rng(7)
    return Counter(sample_plate(rng, province_flatten=flatten)[0] for _ in range(n))


# --- labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("green, length", [(False, 7), (True, 8)])
def test_sampled_plates_always_pass_check_plate(green, length):
    for seed in range(300):
        rng = np.random.default_rng(seed)
        for flatten in (0.0, 0.5, 1.0):
            text = sample_plate(rng, green=green, province_flatten=flatten)
            assert check_plate(text) == text and len(text) == length, text


def test_green_plates_are_small_new_energy_plates_with_d_or_f_after_the_city_letter_by_default():
    rng = np.random.default_rng(0)
    plates = [sample_plate(rng, green=True) for _ in range(500)]
    assert {p[2] for p in plates} == {"D", "F"}
    assert all(p[4:].isdigit() for p in plates)


def test_green_plates_can_be_new_energy_plates_of_every_kind_china_issues():
    rng = np.random.default_rng(0)
    plates = [sample_plate(rng, green=True, new_energy_letters=True, large_share=0.15) for _ in range(2000)]
    assert all(is_issued_format(p) for p in plates)
    small = [p for p in plates if not is_large_new_energy(p)]
    assert {p[2] for p in small} == set("ABCDEFGHJK")  # the kind: D or F mostly, the letters issued since 2021 too
    assert Counter(p[2] for p in small).most_common(1)[0][0] == "D"
    assert all(p[4:].isdigit() for p in small)
    large = [p for p in plates if is_large_new_energy(p)]  # lorries and buses: five digits, then D or F
    assert 0.1 < len(large) / len(plates) < 0.2 and {p[-1] for p in large} == {"D", "F"}


def test_large_new_energy_plates_are_yellow_under_the_province_and_green_after():
    image = render_plate("苏A12345D", np.random.default_rng(1), degrade=0.0, rectified=True).astype(float)
    h, w, _ = image.shape
    hsv = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_BGR2HSV)
    left, right = hsv[h // 10: h // 5, w // 25: w // 5], hsv[h // 10: h // 5, 2 * w // 5: 4 * w // 5]
    assert 12 <= np.median(left[..., 0]) <= 34 and 45 <= np.median(right[..., 0]) <= 80  # yellow, then green


def _character_kept(quad: np.ndarray, size: tuple[int, int], to_crop: np.ndarray | None = None) -> float:
    """The smaller share of the first and last characters' boxes (7-character plate) that lies inside the crop."""
    plate_w, char_w, _, _ = synth._LAYOUT[7]
    x0 = synth._text_left(7)
    to_quad = cv2.getPerspectiveTransform(
        np.float32([[0, 0], [plate_w, 0], [plate_w, synth._PLATE_H], [0, synth._PLATE_H]]), np.float32(quad))
    kept = []
    for left in (x0, plate_w - x0 - char_w):
        xs, ys = np.meshgrid(np.linspace(left + 4, left + char_w - 4, 20), np.linspace(25, 115, 20))
        points = cv2.perspectiveTransform(np.float32(np.stack([xs.ravel(), ys.ravel()], 1))[None], to_quad)
        if to_crop is not None:
            points = cv2.perspectiveTransform(points, to_crop)
        x, y = points[0].T
        kept.append(np.mean((x >= 0) & (x < size[0]) & (y >= 0) & (y < size[1])))
    return min(kept)


@pytest.mark.parametrize("box_clip", [0.0, 0.2])
def test_box_clip_clips_the_first_or_last_character_now_and_then_and_seldom_half_of_it(box_clip):
    # as the CCPD2019-dl1 crops of tilted plates do; measured on the plates' geometry, 3,000 placements
    kept = np.array([_character_kept(*synth._placement(np.random.default_rng([99, i]), 440 / 140, 1.0, box_clip))
                     for i in range(3000)])
    if box_clip:
        assert 0.05 < np.mean(kept < 0.95) < 0.15  # 8 % with the cuts of synth.CUT
        assert np.mean(kept < 0.5) < 0.01
    else:  # the default (generator v10): the box's slack around a tilted plate keeps the characters whole
        assert np.mean(kept < 0.95) < 0.01


def test_flatten_zero_keeps_ccpd_province_skew():
    counts = provinces(3000, 0.0)
    assert counts["皖"] / 3000 > 0.8


def test_flatten_one_spreads_plates_evenly_over_provinces():
    counts = provinces(3000, 1.0)
    assert counts["皖"] / 3000 < 0.08  # uniform is 1/31, about 0.03
    assert len(counts) == 31


def test_home_share_fixes_wans_share_and_spreads_the_rest_evenly():
    rng = np.random.default_rng(3)
    counts = Counter(sample_plate(rng, province_flatten=1.0, home_share=0.1)[0] for _ in range(6000))
    assert 0.08 < counts["皖"] / 6000 < 0.12
    others = [n for p, n in counts.items() if p != "皖"]
    assert len(others) == 30 and min(others) > 0.5 * 5400 / 30  # every other province common enough to learn


def test_the_default_test_split_draws_every_province_equally_often():
    cfg = SynthConfig()
    assert cfg.test_balanced and cfg.home_share == 0.2
    texts = [synth._plate(0, synth.SPLITS.index("test"), i, cfg.model_copy(update={"degrade": 0.0}))[1]
             for i in range(620)]
    counts = Counter(t[0] for t in texts)
    assert len(counts) == 31 and counts["皖"] / 620 < 0.07  # about 1/31, not the training split's 0.1


def test_position_counts_equal_the_ccpd_label_stats():
    if not STATS.is_file():
        pytest.skip(f"{STATS} is absent (the shared data folder beside the repository)")
    assert json.loads(STATS.read_text(encoding="utf-8"))["position_counts"] == POSITION_COUNTS


# --- rendering ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["皖A12345", "苏E1W8MQ", "皖AD12345", "京NF8B041"])
def test_render_plate_returns_a_bgr_uint8_crop_of_plausible_size(text):
    for seed in range(20):
        image = render_plate(text, np.random.default_rng(seed))
        h, w, channels = image.shape
        assert image.dtype == np.uint8 and channels == 3
        assert 60 <= w <= 800 and 15 <= h <= 400, image.shape
        assert 1.2 <= w / h <= 8, image.shape


def test_render_plate_crop_sizes_vary_like_real_crops():
    widths = [render_plate("皖A12345", np.random.default_rng(s)).shape[1] for s in range(60)]
    assert min(widths) < 120 and max(widths) > 250


def test_rectified_plates_are_cut_out_like_ccpd_photos():
    # sources.CcpdPhotos warps a photo's annotated corners to 220x70: the plate fills the crop, blue to the edges
    for seed in range(10):
        image = render_plate("皖A12345", np.random.default_rng(seed), rectified=True)
        assert image.shape == (70, 220, 3)
        hue, sat = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 0], cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
        blue = (hue > 90) & (hue < 130) & (sat > 60)
        assert blue[:, :20].mean() > 0.5 and blue[:, -20:].mean() > 0.5, seed  # no car beside the plate


@pytest.mark.parametrize("text, dot", [("皖A12345", True), ("皖AD12345", False)])
def test_a_dot_follows_the_city_letter_on_blue_plates_only(text, dot):
    # GA 36: blue plates print a dot in the gap after the city letter; green new-energy plates leave it empty
    for seed in range(3):
        gray = cv2.cvtColor(render_plate(text, np.random.default_rng(seed), degrade=0.0, rectified=True),
                            cv2.COLOR_BGR2GRAY).astype(float)
        gap = gray[15:56, 61:70]  # the gap between the 2nd and 3rd characters, full character height
        contrast = np.abs(gap - np.median(gap)).max()
        assert (contrast > 40) == dot, (seed, contrast)


def test_render_plate_is_deterministic_for_a_seed():
    a = render_plate("皖A88888", np.random.default_rng(3))
    b = render_plate("皖A88888", np.random.default_rng(3))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("text, colour", [("皖A12345", "blue"), ("皖AD12345", "green"), ("苏E12345", "yellow")])
def test_clean_renders_show_the_plate_colour_in_the_middle(text, colour):
    image = render_plate(text, np.random.default_rng(1), degrade=0.0, colour=colour).astype(float)
    h, w, _ = image.shape
    b, g, r = image[h // 3: 2 * h // 3, w // 4: 3 * w // 4].reshape(-1, 3).mean(0)
    if colour == "blue":
        assert b > g + 40 and b > r + 40, (b, g, r)
    elif colour == "yellow":
        assert r > b + 40 and g > b + 40, (b, g, r)
    else:
        assert g > r and g > b, (b, g, r)


def test_yellow_plates_have_dark_characters_and_bolder_strokes_than_blue_ones():
    # the characters are the darkest pixels on a yellow plate (the lightest on a blue one)
    image = render_plate("苏E12345", np.random.default_rng(2), degrade=0.0, rectified=True, colour="yellow")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[12:58, 70:210]  # characters 3 to 7
    ink = gray < 100
    assert 0.15 < ink.mean() < 0.6
    assert glyphs.WEIGHTS[3] > glyphs.WEIGHTS[2]  # yellow draws at WEIGHTS[3:], blue at WEIGHTS[2:4]


def test_plate_colour_must_fit_the_plate_length():
    with pytest.raises(ValueError, match="green plates have 8"):
        render_plate("皖A12345", np.random.default_rng(0), colour="green")
    with pytest.raises(ValueError, match="yellow plates have 7"):
        render_plate("皖AD12345", np.random.default_rng(0), colour="yellow")
    with pytest.raises(ValueError, match="colour must be one of"):
        render_plate("皖A12345", np.random.default_rng(0), colour="red")


def test_adverse_conditions_keep_a_valid_image():
    for seed in range(30):
        image = render_plate("京A12345", np.random.default_rng(seed), adverse=True)
        assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) >= 8


@pytest.mark.parametrize("degrade", [0.0, 0.5, 2.0])
def test_render_plate_works_across_the_degrade_range(degrade):
    for seed in range(40):
        text = sample_plate(np.random.default_rng(seed), green=seed % 4 == 0)
        image = render_plate(text, np.random.default_rng(seed), degrade=degrade)
        assert image.dtype == np.uint8 and image.shape[2] == 3 and min(image.shape[:2]) >= 8


def test_render_plate_rejects_an_invalid_plate():
    with pytest.raises(ValueError, match="expected 7"):
        render_plate("皖A1234", np.random.default_rng(0))


def test_a_missing_font_names_the_package_to_install():
    with pytest.raises(RuntimeError, match="mplfonts"):
        glyphs.font_path("NoSuchFont.ttf")


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"jpeg_quality": (90, 40)}, {"jpeg_quality": (0, 50)}, {"green_fraction": 1.5},
                                 {"province_flatten": -0.1}, {"n_train": -1}, {"n_tran": 10},
                                 {"green_fraction": 0.6, "yellow_fraction": 0.5}, {"home_share": 1.2}])
def test_config_rejects_bad_values_and_unknown_keys(bad):
    with pytest.raises(ValidationError):
        SynthConfig(**bad)


# --- the zip --------------------------------------------------------------------------------------------

SMALL = SynthConfig(n_train=60, n_test=20, seed=5, green_fraction=0.3)


@pytest.fixture(scope="module")
def zip_two_workers(tmp_path_factory) -> Path:
    return generate_zip(tmp_path_factory.mktemp("zip") / "synthetic.zip", SMALL.model_copy(update={"workers": 2}),
                        progress=False)


def test_generate_zip_writes_the_dl1_layout_with_valid_plate_names(zip_two_workers):
    with zipfile.ZipFile(zip_two_workers) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert sum(n.startswith("synthetic/train/") for n in names) == 60
        assert sum(n.startswith("synthetic/test/") for n in names) == 20
        for info in infos:
            folder, _, file = info.filename.rpartition("/")
            ident, _, rest = file.partition("-")
            assert folder in ("synthetic/train", "synthetic/test") and len(ident) == 6 and ident.isdigit()
            assert check_plate(label_from_filename(info.filename)) == rest.removesuffix(".jpg")
            assert info.flag_bits & 0x800 and info.compress_type == zipfile.ZIP_STORED  # UTF-8 names, stored
            image = cv2.imdecode(np.frombuffer(zf.read(info), np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.ndim == 3, info.filename
    assert sorted(p.name for p in zip_two_workers.parent.iterdir()) == ["synthetic.zip"]  # no temporary left


def test_generate_zip_is_byte_identical_for_one_or_two_workers(zip_two_workers, tmp_path):
    one = generate_zip(tmp_path / "one.zip", SMALL.model_copy(update={"workers": 1}), progress=False)
    assert one.read_bytes() == zip_two_workers.read_bytes()


def test_iter_plates_yields_what_generate_zip_stores(zip_two_workers):
    plates = [text for _, text in synth.iter_plates(5, seed=5, split="test", cfg=SMALL)]
    with zipfile.ZipFile(zip_two_workers) as zf:
        stored = [label_from_filename(n) for n in sorted(zf.namelist()) if n.startswith("synthetic/test/")]
    assert plates == stored[:5]
