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
from plate_lib.plates import check_plate, label_from_filename
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


def test_green_plates_are_small_new_energy_plates_with_d_or_f_after_the_city_letter():
    rng = np.random.default_rng(0)
    plates = [sample_plate(rng, green=True) for _ in range(500)]
    assert {p[2] for p in plates} == {"D", "F"}
    assert all(p[4:].isdigit() for p in plates)


def test_flatten_zero_keeps_ccpd_province_skew():
    counts = provinces(3000, 0.0)
    assert counts["皖"] / 3000 > 0.8


def test_flatten_one_spreads_plates_evenly_over_provinces():
    counts = provinces(3000, 1.0)
    assert counts["皖"] / 3000 < 0.08  # uniform is 1/31, about 0.03
    assert len(counts) == 31


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


@pytest.mark.parametrize("text, colour", [("皖A12345", "blue"), ("皖AD12345", "green")])
def test_clean_renders_show_the_plate_colour_in_the_middle(text, colour):
    image = render_plate(text, np.random.default_rng(1), degrade=0.0).astype(float)
    h, w, _ = image.shape
    b, g, r = image[h // 3: 2 * h // 3, w // 4: 3 * w // 4].reshape(-1, 3).mean(0)
    if colour == "blue":
        assert b > g + 40 and b > r + 40, (b, g, r)
    else:
        assert g > r and g > b, (b, g, r)


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
                                 {"province_flatten": -0.1}, {"n_train": -1}, {"n_tran": 10}])
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
