"""Sources: the dl1 zip read in place, crop folders, CCPD photos, the deterministic validation split; labels.csv
in the encodings Chinese tools write, names that stay inside their folder, file sizes and pixels bounded before
anything is read or decoded."""

import os
import zipfile

import cv2
import numpy as np
import pytest
from conftest import CCPD_SAMPLE, needs_sample, plate_jpeg, write_dl1_zip

from plate_lib.config import PreprocessConfig
from plate_lib.sources import (
    CcpdPhotos,
    CropFolder,
    DataError,
    Dl1Zip,
    Record,
    ccpd_bbox,
    hashed_split,
    in_val,
    load_image_file,
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


def test_a_zipped_folder_of_crops_is_split_by_plate_text_as_the_folder_is(tmp_path):
    # members outside train/ and test/ were all test data: a zipped crops folder then had no train split
    plates = [f"苏E{i:05d}" for i in range(60)]
    folder = tmp_path / "crops"
    folder.mkdir()
    with zipfile.ZipFile(tmp_path / "crops.zip", "w") as zf:
        for p in plates:
            (folder / f"{p}.jpg").write_bytes(plate_jpeg())
            zf.writestr(f"crops/{p}.jpg", plate_jpeg())
    zipped, unzipped = open_source(tmp_path / "crops.zip"), open_source(folder)
    for split in ("train", "val", "test"):
        assert sorted(r.text for r in zipped.records(split)) == sorted(r.text for r in unzipped.records(split))
    assert len(zipped.records("train")) > len(zipped.records("test")) > 0


@pytest.mark.parametrize("base", ["crops/", ""])
def test_a_zipped_folder_of_crops_is_labelled_by_the_label_list_it_holds(tmp_path, base, caplog):
    with zipfile.ZipFile(tmp_path / "crops.zip", "w") as zf:
        zf.writestr(base + "labels.csv", "file,label\n0001.jpg,苏E12345\nsub/0002.jpg,京N84128\n0003.jpg,沪A12345\n")
        for name in ("0001.jpg", "sub/0002.jpg", "0004.jpg"):
            zf.writestr(base + name, plate_jpeg())
    src = open_source(tmp_path / "crops.zip")
    with caplog.at_level("WARNING"):
        recs = {r.name: r for r in src.records("all")}
    assert (recs[base + "0001.jpg"].text, recs[base + "sub/0002.jpg"].text) == ("苏E12345", "京N84128")
    assert recs[base + "0003.jpg"].error == "listed in labels.csv (line 4) but missing"
    assert src.unlisted == [base + "0004.jpg"] and "not listed there and not read" in caplog.text
    assert src.load(recs[base + "0001.jpg"]).shape[:2] == (40, 120)


def test_a_zip_holding_two_label_lists_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "crops.zip", "w") as zf:
        zf.writestr("a/labels.csv", "file,label\n")
        zf.writestr("b/labels.txt", "")
        zf.writestr("a/1.jpg", plate_jpeg())
    with pytest.raises(DataError, match=r"holds 2 label lists \(a/labels\.csv, b/labels\.txt\); a zip is read with one"):
        open_source(tmp_path / "crops.zip").records("all")


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


@pytest.mark.parametrize("header", ["file,label", "filename,plate", "image_path,plate_text", " Image , Text "])
def test_labels_csv_columns_may_go_by_the_names_label_lists_use(tmp_path, header):
    (tmp_path / "a.jpg").write_bytes(plate_jpeg())
    (tmp_path / "labels.csv").write_text(f"{header}\na.jpg,苏E12345\n", encoding="utf-8")
    assert [(r.name, r.text) for r in CropFolder(tmp_path).records("all")] == [("a.jpg", "苏E12345")]


@pytest.mark.parametrize(("text", "says"), [
    ("a.jpg,苏E12345\n", "is a row, not a header; add the line file,label at its top"),
    ("name,plate\na.jpg,苏E12345\n", "no column(s) for one of them (file: one of file,filename"),
    ("file,image,label\na.jpg,a.jpg,苏E12345\n", "two column(s) for one of them"),
])
def test_a_labels_csv_without_one_file_and_one_label_column_is_refused_saying_what_to_add(tmp_path, text, says):
    (tmp_path / "a.jpg").write_bytes(plate_jpeg())
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="labels.csv") as e:
        CropFolder(tmp_path).records("all")
    assert says in str(e.value)


def test_a_flat_crop_folder_is_split_by_a_hash_of_the_plate_text(tmp_path):
    texts = [f"苏E{i:05d}" for i in range(600)]
    folder = tmp_path / "flat"
    folder.mkdir()
    rows = ["file,label"]
    for i, text in enumerate(texts):
        (folder / f"{i:04d}.jpg").write_bytes(b"")  # never decoded here
        rows.append(f"{i:04d}.jpg,{text}")
    rows.append("dup.jpg,苏E00007")  # a second image of one plate lands beside the first
    (folder / "dup.jpg").write_bytes(b"")
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


def test_forms_only_plate_predict_takes_say_what_a_data_source_is(tmp_path):
    (tmp_path / "crop.jpg").write_bytes(plate_jpeg())
    with pytest.raises(DataError, match=r"crop\.jpg is one image, not a data source; .*`plate predict` reads single"):
        open_source(tmp_path / "crop.jpg")
    with pytest.raises(DataError, match="a glob pattern is not a data source: name the folder that holds the crops"):
        open_source(str(tmp_path / "*.jpg"))
    with pytest.raises(DataError, match=r"standard input \(-\) is not read here"):
        open_source("-")


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


def test_a_tar_archive_is_refused_saying_to_unpack_it(tmp_path):
    (tmp_path / "CCPD2019.tar.xz").write_bytes(b"\xfd7zXZ\x00")
    with pytest.raises(DataError, match=r"not a \.zip.*cannot be read in place.*tar xf for a \.tar\.\*, as CCPD2019 comes, CCPD2019\.tar\.xz"):
        open_source(tmp_path / "CCPD2019.tar.xz")


def test_the_whole_ccpd2019_folder_is_read_leaving_out_its_no_plate_photos_by_name(tmp_path, caplog):
    # CCPD2019 as unpacked: ccpd_base/ … , ccpd_np/ (cars without a plate, named 1005.jpg …), splits/*.txt, README.md
    names = [f"0{i}-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_{i}_2_3_4_5-100-10.jpg" for i in range(3)]
    for sub, name in [("ccpd_base", names[0]), ("ccpd_blur", names[1]), ("ccpd_np", names[2]), ("ccpd_np", "1005.jpg"),
                      ("ccpd_np", "1019.jpg"), ("splits", "train.txt"), (".", "README.md")]:
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / name).write_bytes(plate_jpeg())
    with caplog.at_level("INFO"):
        src = open_source(tmp_path)
        recs = src.records("all")
    assert isinstance(src, CcpdPhotos) and not any(r.error for r in recs)
    assert sorted(r.name for r in recs) == sorted(["ccpd_base/" + names[0], "ccpd_blur/" + names[1], "ccpd_np/" + names[2]])
    assert src.no_plate == ["ccpd_np/1005.jpg", "ccpd_np/1019.jpg"]
    assert "2 photo(s) in ccpd_np/ are CCPD's photos without a plate" in caplog.text and "ccpd_np/1005.jpg" in caplog.text
    (tmp_path / "ccpd_base" / "1005.jpg").write_bytes(plate_jpeg())  # outside ccpd_np: a bad sample, as before
    assert [r.name for r in open_source(tmp_path).records("all") if r.error] == ["ccpd_base/1005.jpg"]


def test_ccpd2019_photos_may_be_split_by_its_own_split_lists(tmp_path, caplog):
    names = {i: f"0{i}-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_{i}_2_3_4_5-100-10.jpg" for i in range(6)}
    where = {0: "ccpd_base", 1: "ccpd_base", 2: "ccpd_base", 3: "ccpd_blur", 4: "ccpd_blur", 5: "ccpd_db"}
    for i, name in names.items():
        (tmp_path / where[i]).mkdir(exist_ok=True)
        (tmp_path / where[i] / name).write_bytes(plate_jpeg())
    (tmp_path / "splits").mkdir()
    lists = {"train": [0, 1], "val": [2], "test": [3, 4]}  # ccpd_db's photo listed in none
    for split, ids in lists.items():
        text = "".join(f"{where[i]}/{names[i]}\n" for i in ids) + ("ccpd_tilt/absent.jpg\n" if split == "test" else "")
        if split == "test":  # another prefix and Windows separators read alike: matched by sub-folder and name
            text = text.replace("ccpd_blur/", "CCPD2019\\ccpd_blur\\")
        (tmp_path / "splits" / f"{split}.txt").write_text(text, encoding="utf-8")
    official = open_source(tmp_path, ccpd_split="official")
    with caplog.at_level("INFO"):
        got = {split: sorted(r.name for r in official.records(split)) for split in lists}
    assert got == {split: sorted(f"{where[i]}/{names[i]}" for i in ids) for split, ids in lists.items()}
    assert official.unlisted == [f"ccpd_db/{names[5]}"]
    assert "train 2, val 1, test 2; 1 listed photo(s) not in the folder; 1 photo(s) listed in none" in caplog.text
    hashed = open_source(tmp_path)  # by default, a hash of the file name, as before
    assert len(hashed.records("all")) == 6 and hashed.fingerprint() != official.fingerprint()
    for split in lists:  # lists that name none of the folder's photos: said so, not a crash
        (tmp_path / "splits" / f"{split}.txt").write_text("elsewhere/1.jpg\n", encoding="utf-8")
    from plate_lib.dataset import load_split, require_plates

    src = open_source(tmp_path, ccpd_split="official")
    with pytest.raises(DataError, match=r"split lists \(splits/\*\.txt\) name none of its files \(6 image"):
        require_plates(load_split(src, "train", PreprocessConfig(), tmp_path / "cache"), src, "fix")
    (tmp_path / "splits" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"data\.ccpd_split official reads .*splits/val\.txt not found"):
        open_source(tmp_path, ccpd_split="official").records("all")


def test_data_ccpd_split_applies_to_data_source_and_other_ccpd_sources_split_by_hash(tmp_path):
    from plate_lib.config import from_dict
    from plate_lib.dataset import open_cfg_source

    name = "01-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_1_2_3_4_5-100-10.jpg"
    for folder in ("sample", "CCPD2019"):  # the sample without CCPD2019's split lists
        (tmp_path / folder / "ccpd_base").mkdir(parents=True)
        (tmp_path / folder / "ccpd_base" / name).write_bytes(plate_jpeg())
    cfg = from_dict({"data": {"source": str(tmp_path / "CCPD2019"), "ccpd_split": "official",
                              "eval_sets": [str(tmp_path / "sample")]}}, "test")
    assert open_cfg_source(cfg, str(tmp_path / "sample")).split == "hash"  # an eval set: read as before
    assert open_cfg_source(cfg, str(tmp_path / "CCPD2019") + "/").split == "official"  # data.source
    assert open_cfg_source(cfg, str(tmp_path / "sample"), ccpd_split="official").split == "official"  # evaluate --data


def test_ccpd2020_photos_keep_their_train_and_test_folders_and_their_subset_name(tmp_path):
    names = [f"0{i}-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_{i}_2_3_4_5_6-100-10.jpg" for i in range(12)]
    for i, name in enumerate(names):
        folder = tmp_path / "ccpd_green" / ("train", "val", "test")[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(plate_jpeg())
    src = open_source(tmp_path)
    assert isinstance(src, CcpdPhotos)
    test = src.records("test")
    assert sorted(r.name for r in test) == sorted(f"ccpd_green/test/{n}" for n in names[2::3])
    assert {r.meta["subset"] for r in src.records("all")} == {"ccpd_green"}
    assert not {r.name for r in src.records("train") + src.records("val")} & {r.name for r in test}


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


# --- label fixes: wrong published labels corrected beside the data ---------------------------------------------


def _fixes(tmp_path, rows: str):
    path = tmp_path / "fixes.csv"
    path.write_text("file,label,note\n" + rows, encoding="utf-8")
    return path


def test_label_fixes_correct_the_text_keep_the_published_label_and_the_split(tmp_path):
    texts = [f"苏E{i:05d}" for i in range(40)]
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:04d}.jpg").write_bytes(b"")  # never decoded here
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{i:04d}.jpg,{t}\n" for i, t in enumerate(texts)),
                                       encoding="utf-8")
    fixes = _fixes(tmp_path, "0003.jpg,沪A9Q7V8,the crop shows 沪\n")
    plain, fixed = open_source(folder), open_source(folder, label_fixes=fixes)
    split = {r.name: s for s in ("train", "val", "test") for r in plain.records(s)}
    rec = next(r for r in fixed.records(split["0003.jpg"]) if r.name == "0003.jpg")
    assert rec.text == "沪A9Q7V8" and rec.meta == {"label_as_published": "苏E00003"}
    changed = [(a.name, b.text) for a, b in zip(plain.records("all"), fixed.records("all"), strict=True) if a != b]
    assert changed == [("0003.jpg", "沪A9Q7V8")]
    assert fixed.fingerprint() != plain.fingerprint()  # cached arrays hold labels: fixes make another variant


def test_a_fixed_plate_joins_the_split_of_another_image_of_it(tmp_path):
    candidates = [f"苏E{i:05d}" for i in range(200)]
    first = candidates[0]
    other = next(t for t in candidates if hashed_split(t, 0.15) != hashed_split(first, 0.15))
    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"")
    (folder / "b.jpg").write_bytes(b"")
    (folder / "labels.csv").write_text(f"file,label\na.jpg,{first}\nb.jpg,{other}\n", encoding="utf-8")
    fixed = open_source(folder, label_fixes=_fixes(tmp_path, f"a.jpg,{other},another image of b.jpg's plate\n"))
    assert {r.name for r in fixed.records(hashed_split(other, 0.15))} == {"a.jpg", "b.jpg"}


def test_a_fix_mends_a_bad_label_but_not_a_missing_file(tmp_path):
    src_dir = tmp_path / "c"
    _labels(src_dir, "file,label\n车牌1.jpg,苏E1234\ngone.jpg,苏E12346\n")
    src = open_source(src_dir, label_fixes=_fixes(tmp_path, "车牌1.jpg,苏E12345,\ngone.jpg,苏E12347,\n"))
    got = {r.name: (r.text, r.error) for r in src.records("all")}
    assert got == {"车牌1.jpg": ("苏E12345", ""), "gone.jpg": ("苏E12347", "listed in labels.csv (line 3) but missing")}


@pytest.mark.parametrize("rows, message", [
    ("nothere.jpg,苏E12345,\n", r"fixes\.csv: corrects 1 file\(s\) that .*c does not hold \(nothere\.jpg\)"),
    ("车牌1.jpg,苏E1234,\n", r"fixes\.csv:2: the corrected label of 车牌1\.jpg is not a plate"),
    ("车牌1.jpg,苏E12345,\n车牌1.jpg,苏E12346,\n", r"fixes\.csv:3: 车牌1\.jpg is corrected twice"),
    ("../x.jpg,苏E12345,\n", r"fixes\.csv:2: file name '\.\./x\.jpg' must name a file inside the source"),
])
def test_a_wrong_fix_is_an_error_naming_the_fixes_file_and_line(tmp_path, rows, message):
    _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n")
    with pytest.raises(DataError, match=message):
        open_source(tmp_path / "c", label_fixes=_fixes(tmp_path, rows)).records("all")


def test_a_fixes_file_is_read_in_the_encodings_of_labels_csv(tmp_path):
    _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n")
    (tmp_path / "fixes.csv").write_bytes("file,label,note\n车牌1.jpg,湘E12345,省份是湘\n".encode("gbk"))
    src = open_source(tmp_path / "c", label_fixes=tmp_path / "fixes.csv")
    assert [r.text for r in src.records("all")] == ["湘E12345"]


def test_a_fixes_file_must_exist_and_have_file_and_label_columns(tmp_path):
    _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n")
    with pytest.raises(DataError, match=r"label fixes file .*missing\.csv not found; expected a CSV with columns"):
        open_source(tmp_path / "c", label_fixes=tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("name,plate\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv: expected a header with columns file,label\[,note\]"):
        open_source(tmp_path / "c", label_fixes=tmp_path / "bad.csv")


# --- labels.csv: encodings and names ------------------------------------------------------------------------------


def _labels(folder, text: str, encoding: str = "utf-8", files=("车牌1.jpg",), list_name: str = "labels.csv"):
    folder.mkdir(exist_ok=True)
    for f in files:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_bytes(plate_jpeg())
    (folder / list_name).write_bytes(text.encode(encoding))
    return CropFolder(folder)


@pytest.mark.parametrize("text", ["file\tlabel\n车牌1.jpg\t苏E12345\nb.jpg\t京N84128\n",
                                  "file;label\n车牌1.jpg;苏E12345\nb.jpg;京N84128\n"])
def test_labels_csv_may_be_separated_by_tabs_or_semicolons(tmp_path, text):
    src = _labels(tmp_path / "c", text, files=("车牌1.jpg", "b.jpg"))
    assert sorted((r.name, r.text, r.error) for r in src.records("all")) == [
        ("b.jpg", "京N84128", ""), ("车牌1.jpg", "苏E12345", "")]


def test_labels_txt_lists_a_file_and_its_plate_a_line_as_paddleocr_and_cblprd_lists_do(tmp_path):
    text = ("# plates\n"
            "imgs/1.jpg\t苏E12345\n"                      # PaddleOCR: a tab
            "imgs/2 copy.jpg\t京N84128\n"                 # a tab keeps a space in the name
            "imgs/3.jpg 粤Z31632D 新能源大型车\n"           # CBLPRD-330k: spaces, the plate type after
            "\n"
            "沪A12345 imgs/5.png\n"                        # the plate first
            "imgs/沪A12345 (2).jpg 沪A12345\n"             # spaces in the name, spaces between: split after the .jpg
            "imgs/4.jpg\n")                                # no plate: a bad sample naming it
    src = _labels(tmp_path / "c", text, files=("imgs/1.jpg", "imgs/2 copy.jpg", "imgs/3.jpg", "imgs/4.jpg", "imgs/5.png",
                                               "imgs/沪A12345 (2).jpg", "x.jpg"), list_name="labels.txt")
    got = {r.name: (r.text, bool(r.error)) for r in src.records("all")}
    assert got == {"imgs/1.jpg": ("苏E12345", False), "imgs/2 copy.jpg": ("京N84128", False),
                   "imgs/3.jpg": ("粤Z31632D", False), "imgs/4.jpg": ("", True), "imgs/5.png": ("沪A12345", False),
                   "imgs/沪A12345 (2).jpg": ("沪A12345", False)}
    assert src.unlisted == ["x.jpg"] and src.labels_path.name == "labels.txt"


def test_labels_txt_may_start_with_a_header_and_names_its_lines_in_errors(tmp_path):
    src = _labels(tmp_path / "c", "filename plate\n车牌1.jpg 苏E12345\nmissing.jpg 苏E12345\n", list_name="labels.txt")
    recs = {r.name: r for r in src.records("all")}
    assert recs["车牌1.jpg"].text == "苏E12345"
    assert recs["missing.jpg"].error == "listed in labels.txt (line 3) but missing"
    with pytest.raises(DataError, match=r"labels\.txt:1: file name '\.\./a\.jpg' leads outside"):
        _labels(tmp_path / "d", "../a.jpg 苏E12345\n", list_name="labels.txt").records("all")


def test_a_folder_with_both_labels_csv_and_labels_txt_is_refused(tmp_path):
    _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n")
    (tmp_path / "c" / "labels.txt").write_text("车牌1.jpg 苏E12345\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds both labels.csv and labels.txt; keep the one"):
        open_source(tmp_path / "c")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_labels_csv_is_read_in_utf8_with_or_without_bom_and_in_gbk_or_gb18030(tmp_path, encoding):
    src = _labels(tmp_path / "c", "file,label\r\n车牌1.jpg,苏E12345\r\n", encoding)
    assert [(r.name, r.text, r.error) for r in src.records("all")] == [("车牌1.jpg", "苏E12345", "")]


def test_labels_csv_in_another_encoding_names_the_file_and_the_encodings_tried(tmp_path):
    src = _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n", "utf-16")
    with pytest.raises(DataError) as e:
        src.records("all")
    assert str(e.value) == (f"{tmp_path / 'c' / 'labels.csv'}: cannot be read as UTF-8, UTF-8 with BOM, or "
                            "GB18030/GBK (it starts with a UTF-16 byte-order mark); save it in one of those (UTF-8 is best)")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\..\\x.jpg", "C:\\x.jpg", "C:x.jpg",
                                  "sub/../../x.jpg", "a\0.jpg"])
def test_labels_csv_names_that_lead_outside_the_folder_are_refused_naming_the_file_and_line(tmp_path, name):
    src = _labels(tmp_path / "c", f"file,label\n车牌1.jpg,苏E12345\n{name},苏E12346\n")
    with pytest.raises(DataError, match=r"c/labels\.csv:3: file name .* leads outside .*c; labels\.csv names files inside"):
        src.records("all")
    with pytest.raises(DataError, match="leads outside the folder"):
        src.load(Record(name, "苏E12346"))  # nor can a record made elsewhere reach outside


def test_labels_csv_backslashes_are_folder_separators(tmp_path):
    src = _labels(tmp_path / "c", "file,label\nsub\\a.jpg,苏E12345\n", files=("sub/a.jpg",))
    rec = src.records("all")[0]
    assert rec.name == "sub/a.jpg" and not rec.error and src.load(rec).shape == (40, 120, 3)


def test_labels_csv_rows_naming_a_missing_or_twice_listed_file_are_bad_samples(tmp_path):
    src = _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\ngone.jpg,苏E12346\n车牌1.jpg,苏E12347\n")
    errors = {r.name: r.error for r in src.records("all") if r.error}
    assert errors == {"gone.jpg": "listed in labels.csv (line 3) but missing",
                      "车牌1.jpg": "listed twice in labels.csv (lines 2 and 4)"}


def test_a_name_an_unbalanced_quote_runs_over_lines_says_so(tmp_path):
    src = _labels(tmp_path / "c", 'file,label\n"车牌1.jpg,苏E12345\nb.jpg,苏E12346\n')
    assert "an unbalanced quote" in src.records("all")[0].error


def test_a_labels_csv_of_mostly_unusable_rows_is_refused_while_it_is_read(tmp_path):
    rows = "".join(f"{i}.jpg,苏E{i:05d}\n" for i in range(1200))  # none of these files exist
    src = _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n" + rows)
    with pytest.raises(DataError, match=r"1001 of its first 1002 rows name no usable sample \(0\.jpg: listed in "
                                        r"labels\.csv \(line 3\) but missing\); it is not a label list of this folder"):
        src.records("all")


# --- bounded reading: file sizes -----------------------------------------------------------------------------------


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_zip_member_declared_over_the_cap_is_a_bad_sample_named_before_it_is_read(tmp_path, monkeypatch):
    from plate_lib.config import load
    from plate_lib.dataset import load_split, open_cfg_source

    path = _zip(tmp_path / "bomb.zip", {"r/test/0-皖A12345.jpg": bytes(17 * 2**20), "r/test/1-苏E12345.jpg": plate_jpeg()})
    src = open_source(path)
    big = next(r for r in src.records("test") if r.text == "皖A12345")
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("the member was read"))
    with pytest.raises(DataError, match=r"bomb\.zip:r/test/0-皖A12345\.jpg: 17\.0 MB \(its declared size in the zip\), "
                                        r"over the 16 MB cap \(data\.max_file_mb\)"):
        src.load(big)
    monkeypatch.undo()
    data = load_split(src, "test", PreprocessConfig(), skip_bad=True, workers=1)
    assert data.texts == ["苏E12345"] and "17.0 MB" in data.skipped[0][1]
    cfg = load(None, {"data.max_file_mb": 18})  # the cap is a config key: under it, the member is read
    data = load_split(open_cfg_source(cfg, path), "test", PreprocessConfig(), skip_bad=True, workers=1)
    assert "not a decodable image (17825792 bytes" in data.skipped[0][1]


def test_a_zip_member_that_inflates_past_its_declared_size_is_a_bad_sample(tmp_path):
    raw = bytearray(_zip(tmp_path / "z.zip", {"r/test/0-皖A12345.jpg": bytes(4 * 2**20)}).read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # declare 100 bytes in both headers
        i = raw.index(sig)
        raw[i + at:i + at + 4] = (100).to_bytes(4, "little")
    (tmp_path / "liar.zip").write_bytes(raw)
    src = open_source(tmp_path / "liar.zip")
    with pytest.raises(DataError, match=r"liar\.zip:r/test/0-皖A12345\.jpg: cannot be read from the zip \(Bad CRC-32"):
        src.load(src.records("test")[0])


def test_a_crop_file_over_the_cap_is_a_bad_sample(tmp_path):
    (tmp_path / "c" / "test").mkdir(parents=True)
    (tmp_path / "c" / "test" / "1-皖A12345.png").write_bytes(bytes(2 * 2**20))
    src = open_source(tmp_path / "c", max_file_mb=1)
    with pytest.raises(DataError, match=r"1-皖A12345\.png: 2\.0 MB, over the 1 MB cap \(data\.max_file_mb\)"):
        src.load(src.records("test")[0])


def test_member_names_from_a_zip_never_become_paths(tmp_path):
    from plate_lib.dataset import load_split

    path = _zip(tmp_path / "d.zip", {"r/test/../../../../../escaped/0-皖A12345.jpg": plate_jpeg()})
    data = load_split(open_source(path), "all", PreprocessConfig(), tmp_path / "cache", workers=1)
    assert data.texts == ["皖A12345"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "cache", *sorted(f"cache/{p.name}" for p in (tmp_path / "cache").iterdir()), "d.zip"]


def test_a_ccpd_photo_is_cut_in_its_stored_pixels_whatever_its_exif_orientation(tmp_path):
    """Its annotation is in the stored pixels' frame; a phone's crop, by contrast, is read upright."""
    from PIL import Image

    name = "01-90_88-100&90_180&116-180&116_100&116_100&90_180&90-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.zeros((300, 240, 3), np.uint8)
    photo[90:116, 100:180] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90° clockwise to show"
    for folder, tags in (("plain", b""), ("turned", exif.tobytes())):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo).save(tmp_path / folder / name, quality=95, exif=tags)
    cut = {f: open_source(tmp_path / f, ccpd_crop="bbox").load(open_source(tmp_path / f).records("all")[0])
           for f in ("plain", "turned")}
    assert cut["plain"].shape == (26, 80, 3) and cut["plain"].mean() > 240
    assert np.array_equal(cut["turned"], cut["plain"])
    crop = tmp_path / "turned" / "crop.jpg"
    Image.fromarray(photo[90:116, 100:180]).save(crop, quality=95, exif=exif.tobytes())
    assert load_image_file(crop).shape == (80, 26, 3)  # an unannotated image: its EXIF orientation applied


def test_a_huge_ccpd_photo_is_decoded_reduced_and_cut_at_its_scaled_corners(tmp_path):
    name = "01-90_88-1000&900_1800&1160-1800&1160_1000&1160_1000&900_1800&900-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.zeros((2000, 2400, 3), np.uint8)  # 4.8 megapixels: decoded at half scale
    photo[900:1160, 1000:1800] = 255
    (tmp_path / "ccpd_base").mkdir()
    cv2.imwrite(str(tmp_path / "ccpd_base" / name), photo)
    rec = open_source(tmp_path).records("all")[0]
    corners, bbox = open_source(tmp_path).load(rec), open_source(tmp_path, ccpd_crop="bbox").load(rec)
    assert corners.shape == (70, 220, 3) and corners.mean() > 240
    assert bbox.shape == (130, 400, 3) and bbox.mean() > 240  # the box, in the half-scale photo's pixels
    assert np.array_equal(load_image_file(tmp_path / "ccpd_base" / name), corners)  # plate predict cuts it alike


# --- what a new user's folders hold: every image file read or named ---------------------------------------------


def test_a_labels_csv_folder_names_the_images_it_does_not_list(tmp_path, caplog):
    src = _labels(tmp_path / "c", "file,label\n车牌1.jpg,苏E12345\n", files=("车牌1.jpg", "b.jpg", "sub/c.png"))
    with caplog.at_level("WARNING"):
        assert [r.name for r in src.records("all")] == ["车牌1.jpg"]
    assert src.unlisted == ["b.jpg", "sub/c.png"]
    assert "lists 1 file(s); 2 image file(s)" in caplog.text and "not listed there and not read: b.jpg, sub/c.png" in caplog.text


@pytest.mark.parametrize("kind", ["crops", "labels.csv", "ccpd"])
def test_a_folder_source_lists_its_tree_once_for_its_kind_scan_and_fingerprint(tmp_path, monkeypatch, kind):
    import plate_lib.sources as sources

    folder = tmp_path / kind
    if kind == "labels.csv":
        _labels(folder, "file,label\n车牌1.jpg,苏E12345\n", files=("车牌1.jpg", "b.jpg"))
    else:
        folder.mkdir()
        name = "01-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_1_2_3_4_5-100-10.jpg" if kind == "ccpd" \
            else "苏E12345.jpg"
        (folder / name).write_bytes(plate_jpeg())
    calls = []
    real = sources.files_under
    monkeypatch.setattr(sources, "files_under", lambda f: calls.append(f) or real(f))
    src = open_source(folder)
    for split in ("train", "val", "test"):  # as load_split does: a cache key (the fingerprint) for each split
        src.fingerprint()
        src.records(split)
    assert len(calls) == 1 and len(src.records("all")) == 1
    assert type(src) is (CcpdPhotos if kind == "ccpd" else CropFolder)


def test_a_header_only_labels_csv_says_it_lists_nothing(tmp_path):
    from plate_lib.dataset import SplitData, require_plates

    src = _labels(tmp_path / "c", "file,label\n", files=("a.jpg", "b.jpg"))
    empty = SplitData(np.zeros((0, 48, 144, 1), np.uint8), [], [], split="all")
    with pytest.raises(DataError, match=r"its labels\.csv names none of its files \(2 image file\(s\) there are not listed\)"):
        require_plates(empty, src, "fix it")


def test_one_file_listed_under_two_spellings_is_listed_twice(tmp_path):
    src = _labels(tmp_path / "c", "file,label\n./车牌1.jpg,苏E12345\n车牌1.jpg,苏E12345\n")
    assert [(r.name, r.error) for r in src.records("all")] == [
        ("车牌1.jpg", ""), ("车牌1.jpg", "listed twice in labels.csv (lines 2 and 3)")]


def test_a_labels_csv_decides_a_folder_holding_ccpd_photos_too_else_most_names_do(tmp_path):
    ccpd = "01-90_88-10&10_110&50-108&48_11&46_12&12_109&15-0_0_1_2_3_4_5-100-10.jpg"
    for i in range(5):
        (tmp_path / "mixed" / f"{i}-苏E1234{i}.jpg").parent.mkdir(exist_ok=True)
        (tmp_path / "mixed" / f"{i}-苏E1234{i}.jpg").write_bytes(plate_jpeg(w=300, h=200))
    (tmp_path / "mixed" / ccpd).write_bytes(plate_jpeg(w=300, h=200))
    assert type(open_source(tmp_path / "mixed")) is CropFolder  # 5 crops, 1 photo: a crops folder, the photo named
    bad = [r for r in open_source(tmp_path / "mixed").records("all") if r.error]
    assert [r.name for r in bad] == [ccpd]
    (tmp_path / "mixed" / "labels.csv").write_text("file,label\n0-苏E12340.jpg,苏E12340\n", encoding="utf-8")
    for i in range(9):  # photos now the most, but the label list decides
        (tmp_path / "mixed" / ccpd.replace("01-", f"0{i + 2}-")).write_bytes(plate_jpeg(w=300, h=200))
    assert type(open_source(tmp_path / "mixed")) is CropFolder
    (tmp_path / "mixed" / "labels.csv").unlink()
    assert type(open_source(tmp_path / "mixed")) is CcpdPhotos


def test_a_file_name_that_is_not_utf8_is_a_bad_sample_saying_how_to_rename_it(tmp_path):
    import os

    folder = tmp_path / "gbk"
    folder.mkdir()
    (folder / "苏E12345.jpg").write_bytes(plate_jpeg())
    try:
        (folder / os.fsdecode("京N84E28.jpg".encode("gbk"))).write_bytes(plate_jpeg())
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    src = open_source(folder)
    src.fingerprint()  # hashing the folder's names does not fail on it
    bad = [r for r in src.records("all") if r.error]
    assert len(bad) == 1 and bad[0].name == "\\xbe\\xa9N84E28.jpg"
    assert "not UTF-8" in bad[0].error and "as GBK it reads '京N84E28.jpg'" in bad[0].error and "convmv" in bad[0].error


def test_images_of_a_format_not_read_are_bad_samples_and_webp_is_read(tmp_path):
    folder = tmp_path / "formats"
    folder.mkdir()
    (folder / "苏E12345.webp").write_bytes(cv2.imencode(".webp", cv2.imdecode(
        np.frombuffer(plate_jpeg(), np.uint8), cv2.IMREAD_COLOR))[1].tobytes())
    (folder / "苏E12346.tif").write_bytes(b"II*\0")
    (folder / "notes.txt").write_text("not an image")
    src = open_source(folder)
    recs = {r.name: r for r in src.records("all")}
    assert set(recs) == {"苏E12345.webp", "苏E12346.tif"}
    assert src.load(recs["苏E12345.webp"]).shape == (40, 120, 3)
    assert recs["苏E12346.tif"].error.startswith(".tif images are not read; convert it to JPEG or PNG")


def test_images_in_a_sub_folder_that_is_a_link_are_read(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "苏E12345.jpg").write_bytes(plate_jpeg())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "data")  # a link back up is entered once
    assert [r.name for r in open_source(tmp_path / "data").records("all")] == ["linked/苏E12345.jpg"]


def test_a_zip_holding_two_members_of_one_name_names_them(tmp_path):
    path = _zip(tmp_path / "dup.zip", {"test/0-苏E12345.jpg": plate_jpeg(), "test/1-苏E12346.jpg": plate_jpeg()})
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("test/0-苏E12345.jpg", plate_jpeg(seed=3))
    recs = Dl1Zip(path).records("all")
    twice = "stored 2 times in the zip (members of one name: which is meant?)"
    assert [(r.name, r.error) for r in recs] == [
        ("test/0-苏E12345.jpg", twice), ("test/1-苏E12346.jpg", ""), ("test/0-苏E12345.jpg", twice)]


def test_a_crop_named_like_a_ccpd_photo_is_refused_its_corners_outside_it(tmp_path):
    name = "01-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_1_2_3_4_5-100-10.jpg"
    (tmp_path / name).write_bytes(plate_jpeg(w=136, h=36))
    with pytest.raises(DataError, match=r"annotated corners .* lie outside the 136×36 photo; .*rename it <plate>\.jpg"):
        load_image_file(tmp_path / name)


def test_a_zip_whose_names_use_backslashes_keeps_its_splits_and_its_label_list(tmp_path):
    # Windows PowerShell 5's Compress-Archive stores dl1\test\0000-皖A12345.jpg
    path = tmp_path / "win.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, split in enumerate(["train", "test"] * 4):
            zf.writestr(f"dl1\\{split}\\{i:04d}-皖A1234{i}.jpg", plate_jpeg(seed=i))
    splits = {r.name: split for split in ("train", "val", "test") for r in Dl1Zip(path).records(split)}
    assert splits and all(("/test/" in n) == (s == "test") for n, s in splits.items())
    assert all(n.startswith("dl1/") for n in splits)
    listed = tmp_path / "listed.zip"
    with zipfile.ZipFile(listed, "w") as zf:
        zf.writestr("crops\\labels.csv", "file,label\n0001.jpg,皖A12345\n")
        zf.writestr("crops\\0001.jpg", plate_jpeg())
    src = Dl1Zip(listed)
    assert [r.text for r in src.records("all")] == ["皖A12345"] and src.labels_path.name == "labels.csv"
    assert src.load(src.records("all")[0]).shape == (40, 120, 3)


def test_macos_metadata_twins_of_images_are_left_out_and_counted(tmp_path, caplog):
    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "皖A12345.jpg").write_bytes(plate_jpeg())
    (folder / "._皖A12345.jpg").write_bytes(b"\0\5\26\7" + bytes(60))  # AppleDouble: attributes, no image
    path = tmp_path / "mac.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("crops/苏B88888.jpg", plate_jpeg("苏B88888"))
        zf.writestr("__MACOSX/crops/._苏B88888.jpg", b"\0\5\26\7" + bytes(60))
    with caplog.at_level("INFO"):
        assert [r.name for r in open_source(folder).records("all")] == ["皖A12345.jpg"]
        assert [r.name for r in Dl1Zip(path).records("all")] == ["crops/苏B88888.jpg"]
    assert caplog.text.count("1 macOS metadata file(s) named as images") == 2 and "._皖A12345.jpg" in caplog.text


def test_val_folders_are_the_val_split_whole(tmp_path):
    for split, plates in {"train": ["皖A00001", "皖A00002"], "valid": ["苏B00001", "苏B00002", "苏B00003"],
                          "test": ["浙C00001"]}.items():
        (tmp_path / split).mkdir()
        for p in plates:
            (tmp_path / split / f"{p}.jpg").write_bytes(plate_jpeg(p))
    src = open_source(tmp_path)
    assert sorted(r.text for r in src.records("val")) == ["苏B00001", "苏B00002", "苏B00003"]
    assert [r.text for r in src.records("test")] == ["浙C00001"]
    assert sorted(r.text for r in src.records("train")) == ["皖A00001", "皖A00002"]  # none of 2 falls to val by hash


def test_label_lists_below_the_top_of_a_folder_are_an_error_naming_them(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "0001.jpg").write_bytes(plate_jpeg())
        (tmp_path / split / "labels.csv").write_text("file,label\n0001.jpg,皖A12345\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no label list at its top but 2 below it \(test/labels.csv, train/labels.csv\)"):
        open_source(tmp_path).records("all")


@pytest.mark.parametrize("text", ["plate file\n皖A12345 0001.jpg\n", "label\tfilename\n皖A12345\t0001.jpg\n",
                                  "file,label\n0001.jpg,皖A12345\n", "0001.jpg;皖A12345\n"])
def test_labels_txt_takes_a_header_either_way_round_and_a_csv_saved_as_txt(tmp_path, text):
    (tmp_path / "0001.jpg").write_bytes(plate_jpeg())
    (tmp_path / "labels.txt").write_text(text, encoding="utf-8")
    assert [(r.name, r.text, r.error) for r in open_source(tmp_path).records("all")] == [("0001.jpg", "皖A12345", "")]


def test_a_label_list_larger_than_a_list_may_be_is_refused_as_a_list(tmp_path, monkeypatch):
    import plate_lib.sources as sources

    monkeypatch.setattr(sources, "LIST_BYTES", 100)
    (tmp_path / "0001.jpg").write_bytes(plate_jpeg())
    (tmp_path / "labels.txt").write_text("0001.jpg 皖A12345\n" * 10, encoding="utf-8")
    with pytest.raises(DataError, match=r"labels.txt: a list of 0.0 MB, over the .* MB a label or split list is read up to"):
        open_source(tmp_path, max_file_mb=16).records("all")


def test_a_zip_of_ccpd_photos_says_to_unzip_it(tmp_path):
    name = "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg"
    path = tmp_path / "ccpd.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"ccpd_base/{name}", plate_jpeg())
    with pytest.raises(DataError, match="holds CCPD2019 photos .* unzip it and name the folder"):
        Dl1Zip(path).records("all")


def test_a_link_to_nothing_in_a_folder_is_a_bad_sample_not_passed_over(tmp_path):
    (tmp_path / "皖A12345.jpg").write_bytes(plate_jpeg())
    (tmp_path / "苏B88888.jpg").symlink_to(tmp_path / "gone.jpg")
    src = open_source(tmp_path)
    recs = {r.name: r for r in src.records("all")}
    assert set(recs) == {"皖A12345.jpg", "苏B88888.jpg"} and src.fingerprint()
    with pytest.raises(DataError, match="苏B88888.jpg"):
        src.load(recs["苏B88888.jpg"])


def test_a_name_whose_gbk_bytes_read_as_utf8_says_what_it_reads_as_gbk(tmp_path):
    (tmp_path / os.fsdecode("鲁B12345.jpg".encode("gbk"))).write_bytes(plate_jpeg())  # on disk: ³B12345.jpg
    (bad,) = open_source(tmp_path).records("all")
    assert "as GBK say '鲁B12345.jpg'" in bad.error and "convmv" in bad.error
