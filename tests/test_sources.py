"""Sources: the dl1 zip read in place, crop folders, CCPD photos, the deterministic validation split."""

import zipfile

import cv2
import numpy as np
import pytest
from conftest import CCPD_SAMPLE, needs_sample, plate_jpeg, write_dl1_zip

from plate_lib.sources import (
    CcpdPhotos,
    CropFolder,
    DataError,
    Dl1Zip,
    ccpd_bbox,
    in_val,
    open_source,
    parse_ccpd_name,
)


def test_dl1_zip_without_utf8_flag_yields_repaired_chinese_labels(dl1_zip):
    assert not any(i.flag_bits & 0x800 for i in zipfile.ZipFile(dl1_zip).infolist())
    src = Dl1Zip(dl1_zip)
    texts = {r.text for r in src.records("all")}
    assert "皖A12345" in texts and "苏B88888" in texts and "皖AF12345" in texts
    rec = src.records("test")[0]
    img = src.load(rec)
    assert img.dtype == np.uint8 and img.shape == (40, 120, 3)


def test_dl1_zip_with_utf8_flag_is_read_as_stored(tmp_path):
    path = write_dl1_zip(tmp_path / "flag.zip", {"train": ["鲁Q12345"], "test": ["皖A00000"]}, utf8_flag=True)
    assert {r.text for r in Dl1Zip(path).records("all")} == {"鲁Q12345", "皖A00000"}


def test_a_zip_holding_only_test_has_an_empty_train_split(tmp_path):
    path = write_dl1_zip(tmp_path / "test-only.zip", {"test": ["皖A00000", "皖A00001"]})
    src = Dl1Zip(path)
    assert len(src.records("test")) == 2 and src.records("train") == []


def test_validation_split_is_a_deterministic_hash_of_the_file_name():
    names = [f"CCPD2019-dl1/train/{i:06d}-皖A{i:05d}.jpg" for i in range(4000)]
    picked = [n for n in names if in_val(n, 0.15)]
    assert picked == [n for n in names if in_val(n, 0.15)]  # same on every call
    assert 0.13 < len(picked) / len(names) < 0.17
    # depends on the file name only, not on the folder it sits in
    assert in_val("a/b/000001-皖A00001.jpg", 0.15) == in_val("000001-皖A00001.jpg", 0.15)


def test_train_and_val_partition_train(dl1_zip):
    src = Dl1Zip(dl1_zip, val_fraction=0.3)
    train, val = src.records("train"), src.records("val")
    assert len(train) + len(val) == 30 and not {r.name for r in train} & {r.name for r in val}


def test_bad_labels_are_kept_as_records_with_the_reason(tmp_path):
    path = write_dl1_zip(tmp_path / "bad.zip", {"test": ["皖A1234", "皖A12345"]})
    bad = [r for r in Dl1Zip(path).records("test") if r.error]
    assert len(bad) == 1 and "6 characters" in bad[0].error and bad[0].name.endswith("皖A1234.jpg")


def test_crop_folder_reads_labels_csv_or_file_names(tmp_path):
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "7-皖A11111.jpg").write_bytes(plate_jpeg())
    (tmp_path / "named" / "沪B22222.jpg").write_bytes(plate_jpeg())
    assert {r.text for r in CropFolder(tmp_path / "named").records("all")} == {"皖A11111", "沪B22222"}

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "a.jpg").write_bytes(plate_jpeg())
    (tmp_path / "csv" / "labels.csv").write_text("file,label\na.jpg,苏E12345\n", encoding="utf-8")
    src = open_source(tmp_path / "csv")
    assert isinstance(src, CropFolder) and [r.text for r in src.records("all")] == ["苏E12345"]


def test_a_flat_crop_folder_is_split_by_a_hash_of_the_plate_text(tmp_path):
    texts = [f"苏E{i:05d}" for i in range(600)]
    folder = tmp_path / "flat"
    folder.mkdir()
    rows = ["file,label"]
    for i, text in enumerate(texts):
        (folder / f"{i:04d}.jpg").write_bytes(b"")  # never decoded here
        rows.append(f"{i:04d}.jpg,{text}")
    rows.append("dup.jpg,苏E00007")  # a second image of one plate lands beside the first
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    src = CropFolder(folder)
    splits = {s: [r.text for r in src.records(s)] for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 601 and len(src.records("all")) == 601
    assert 0.10 < len(splits["test"]) / 600 < 0.20 and 0.08 < len(splits["val"]) / 600 < 0.18
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["val"]) & set(splits["test"])
    home = next(s for s, t in splits.items() if "苏E00007" in t)
    assert splits[home].count("苏E00007") == 2
    # the same plate text goes to the same split in any folder, under any file name
    other = tmp_path / "other"
    other.mkdir()
    (other / "x-苏E00007.jpg").write_bytes(b"")
    assert [r.text for r in CropFolder(other).records(home)] == ["苏E00007"]


def test_wrong_paths_get_errors_that_say_what_was_expected(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_source(tmp_path / "missing.zip")
    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(DataError, match="is a directory, expected a zip"):
        open_source(tmp_path / "dir.zip")
    (tmp_path / "notzip.zip").write_text("hello")
    with pytest.raises(DataError, match="not a zip"):
        open_source(tmp_path / "notzip.zip")


def test_ccpd_file_name_gives_plate_corners_and_conditions():
    name = "0130387931034-88_83-258&504_472&569-476&566_266&568_251&496_461&494-0_0_33_27_25_22_33-115-15.jpg"
    text, corners, meta = parse_ccpd_name(name)
    assert text == "皖A" + "".join("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"[i] for i in [33, 27, 25, 22, 33])
    assert corners.shape == (4, 2) and corners[0].tolist() == [476, 566]
    assert meta == {"tilt_h": 88, "tilt_v": 83, "brightness": 115, "blur": 15}


def test_ccpd_photos_are_cut_by_their_corners_or_by_their_bounding_box(tmp_path):
    name = "01-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.zeros((200, 300, 3), np.uint8)
    photo[50:90, 100:180] = 255  # the plate fills its box
    (tmp_path / "ccpd_base").mkdir()
    cv2.imwrite(str(tmp_path / "ccpd_base" / name), photo)
    assert ccpd_bbox(name) == (100, 50, 180, 90)
    corners = open_source(tmp_path)
    bbox = open_source(tmp_path, ccpd_crop="bbox")
    assert isinstance(bbox, CcpdPhotos) and bbox.crop == "bbox" and corners.crop == "corners"
    rec = bbox.records("all")[0]
    assert corners.load(rec).shape == (70, 220, 3)  # warped upright to 220×70
    assert bbox.load(rec).shape == (40, 80, 3)  # the box as it is in the photo
    assert corners.fingerprint() != bbox.fingerprint()  # caches of the two modes never mix
    with pytest.raises(DataError, match="crop mode 'box'"):
        CcpdPhotos(tmp_path, crop="box")


@needs_sample
def test_ccpd_sample_photos_are_read_and_rectified():
    src = open_source(CCPD_SAMPLE)
    assert isinstance(src, CcpdPhotos)
    recs = src.records("all")
    assert len(recs) == 622 and not any(r.error for r in recs)
    assert sum(len(r.text) == 8 for r in recs) == 5  # the green plates
    assert {r.meta["subset"] for r in recs} == {"ccpd_base", "ccpd_green"}
    crop = src.load(recs[0])
    assert crop.shape == (70, 220, 3)
    n = len(src.records("train")) + len(src.records("val")) + len(src.records("test"))
    assert n == 622
