"""Sources: the dl1 zip read in place, crop folders, CCPD photos, the deterministic validation split."""

import zipfile

import numpy as np
import pytest
from conftest import CCPD_SAMPLE, needs_sample, plate_jpeg, write_dl1_zip

from plate_lib.sources import (
    CcpdPhotos,
    CropFolder,
    DataError,
    Dl1Zip,
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
    assert isinstance(src, CropFolder) and [r.text for r in src.records("test")] == ["苏E12345"]


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
