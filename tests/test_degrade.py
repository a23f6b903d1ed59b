"""degrade and robustness: each fixed degradation does what its name says; the curves start from the clean crops."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_dl1_zip

from plate_lib import degrade, robustness
from plate_lib.config import Config, load
from plate_lib.inference import model_spec, prepare_for_inference
from plate_lib.models import build_model
from plate_lib.sources import DataError, open_source


def plate(h: int = 48, w: int = 144) -> np.ndarray:
    img = np.full((h, w, 3), (160, 60, 20), np.uint8)
    cv2.putText(img, "A12345", (8, h - 12), cv2.FONT_HERSHEY_SIMPLEX, h / 40, (255, 255, 255), 2)
    return img


def sharpness(img: np.ndarray) -> float:
    return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()


def test_at_height_keeps_the_aspect_ratio_and_never_enlarges():
    assert degrade.at_height(plate(), 24).shape == (24, 72, 3)
    assert degrade.at_height(plate(), 96).shape == (48, 144, 3)


def test_rotation_keeps_the_corners_on_a_larger_canvas():
    turned = degrade.rotate(plate(), 20)
    assert turned.shape[0] > 48 + 0.3 * 144 * 0.9 and turned.shape[1] > 144  # sin 20° ≈ 0.34
    assert degrade.rotate(plate(), 0).shape == (48, 144, 3)


def test_tilt_shrinks_the_far_side():
    img = np.full((48, 144, 3), 255, np.uint8)
    tilted = degrade.tilt(np.pad(img, ((0, 0), (0, 0), (0, 0))), 20)
    assert tilted.shape[1] < 144  # foreshortened
    assert tilted.shape[0] >= 48  # the near side is at least as tall


def test_exposure_darkens_below_one_and_brightens_above():
    img = plate()
    assert degrade.exposure(img, 0.3).mean() < img.mean() < degrade.exposure(img, 3.0).mean()


@pytest.mark.parametrize("fn", [degrade.motion_blur, degrade.defocus])
def test_blurs_lower_sharpness_with_strength(fn):
    img = plate()
    assert sharpness(fn(img, 0.1)) < sharpness(fn(img, 0.03)) < sharpness(img)


def test_jpeg_and_glare_keep_the_size():
    for fn, s in ((degrade.jpeg, 10), (degrade.glare, 200)):
        out = fn(plate(), s)
        assert out.shape == (48, 144, 3) and out.dtype == np.uint8


def test_every_random_adverse_condition_returns_an_image_of_the_same_size():
    seen = set()
    for seed in range(40):
        img, kind = degrade.adverse(plate().astype(np.float32), np.random.default_rng(seed), 1.0)
        assert img.shape == (48, 144, 3)
        seen.add(kind)
    assert seen == {"low_light", "overexposed", "glare", "haze", "rain", "motion"}


def test_margin_crop_cuts_or_pads_a_crop_without_context(tmp_path):
    zpath = write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A12345"]})
    src = open_source(zpath)
    rec = src.records("test")[0]
    h, w = src.load(rec).shape[:2]
    assert robustness.margin_crop(src, rec, -0.1).shape[:2] == (h - 2 * round(0.1 * h), w - 2 * round(0.1 * w))
    assert robustness.margin_crop(src, rec, 0.2).shape[:2] == (h + 2 * round(0.2 * h), w + 2 * round(0.2 * w))


def test_curves_have_a_clean_row_and_one_per_strength(tmp_path):
    zpath = write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A12345", "苏B88888"]})
    src = open_source(zpath)
    cfg = Config()
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(cfg.model.name, model_spec(cfg)).eval())
    few = {"jpeg": degrade.ROBUSTNESS["jpeg"], "rotation": degrade.ROBUSTNESS["rotation"]}
    table = robustness.curves(model, cfg, {"tiny": (src, src.records("test"))}, few, margins=[-0.05, 0.1])
    counts = table.groupby("degradation").size().to_dict()
    assert counts == {"none": 1, "jpeg": 5, "rotation": 4, "margin": 2}
    assert table["n"].eq(2).all() and table["word_acc"].between(0, 1).all()


def test_a_turned_ccpd_plate_is_cut_from_the_turned_photo_with_the_car_in_its_corners(tmp_path):
    name = "01-90_90-400&400_620&470-620&470_400&470_400&400_620&400-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.full((1160, 720, 3), 90, np.uint8)  # the "car": grey
    photo[400:470, 400:620] = plate(70, 220)  # corners BR, BL, TL, TR as in the name
    folder = tmp_path / "ccpd_base"
    folder.mkdir()
    cv2.imwrite(str(folder / name), photo, [cv2.IMWRITE_JPEG_QUALITY, 98])
    src = open_source(tmp_path)
    (rec,) = src.records("all")
    assert robustness.rotated_crop(src, rec, 0).shape == (70, 220, 3)  # the plate's own box
    turned = robustness.rotated_crop(src, rec, 20)
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    assert abs(turned.shape[1] - (220 * c + 70 * s)) <= 2 and abs(turned.shape[0] - (220 * s + 70 * c)) <= 2
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:  # the corners show the grey car, not the blue plate
        assert np.abs(turned[y, x].astype(int) - 90).max() <= 12


def test_a_crop_without_its_photo_is_turned_with_its_edges_repeated(tmp_path):
    src = open_source(write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A12345"]}))
    (rec,) = src.records("test")
    np.testing.assert_array_equal(robustness.rotated_crop(src, rec, 10), degrade.rotate(src.load(rec), 10))


def test_compare_counts_the_degraded_plates_and_settings_a_model_reads_better_or_worse_than_the_reference():
    def curves(model, clean, blur1, blur2):
        return pd.DataFrame({"set": "s", "degradation": ["none", "blur", "blur"], "strength": [0.0, 1.0, 2.0],
                             "word_acc": [clean, blur1, blur2], "n": 10, "model": model})

    table = pd.concat([curves("ref", 1.0, 0.5, 0.2), curves("new", 0.9, 0.7, 0.1)])
    rows = robustness.compare(table, "ref").set_index("model")
    assert rows.loc["new", "clean"] == 0.9 and rows.loc["new", "degraded_mean"] == pytest.approx(0.4)
    assert (rows.loc["new", "plates_vs_reference"], rows.loc["new", "better"], rows.loc["new", "worse"]) == (1, 1, 1)
    assert (rows.loc["ref", "plates_vs_reference"], rows.loc["ref", "better"], rows.loc["ref", "worse"]) == (0, 0, 0)


def test_the_curves_read_as_the_config_says_and_leave_out_what_evaluation_skips(tmp_path, monkeypatch):
    src = open_source(write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A12345", "苏B88888"]}))
    recs = src.records("test")
    seen = []

    def read(model, cfg, crops, **how):
        seen.append(how)
        return [("", 0.0)] * len(crops)

    monkeypatch.setattr(robustness, "read_plates", read)
    cfg = load(None, {"predict.rectify_below": 0.0, "predict.tta": True, "predict.by_colour": False,
                      "data.skip_bad": True})
    loads = type(src).load

    def load_or_fail(self, rec):
        if rec.text == "苏B88888":
            raise DataError(f"{rec.name}: JPEG data is truncated")
        return loads(self, rec)

    monkeypatch.setattr(type(src), "load", load_or_fail)
    table = robustness.curves(None, cfg, {"s": (src, recs)}, {}, margins=[0.1])
    assert table["n"].eq(1).all()  # the bad crop left out, as load_split leaves it out with data.skip_bad
    assert seen and all(h == {"rectify_below": 0.0, "tta": True, "batch_size": cfg.training.eval_batch_size,
                              "by_colour": False} for h in seen)


def test_margin_and_turned_ccpd_crops_are_resized_as_the_source_resizes_its_crops(tmp_path):
    name = "01-90_90-400&400_620&470-620&470_400&470_400&400_620&400-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.full((1160, 720, 3), 90, np.uint8)
    photo[400:470, 400:620] = plate(70, 220)
    (tmp_path / "ccpd_base").mkdir()
    cv2.imwrite(str(tmp_path / "ccpd_base" / name), photo)
    src = open_source(tmp_path, ccpd_crop="bbox", resize=(94, 24))
    (rec,) = src.records("all")
    assert src.load(rec).shape == robustness.margin_crop(src, rec, 0.3).shape == (24, 94, 3)
    assert robustness.rotated_crop(src, rec, 10).shape == (24, 94, 3)
