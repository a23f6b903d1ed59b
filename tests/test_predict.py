"""Predict: the files that inputs name (folders, globs, standard input), what an image is (a plate crop or not;
blue, yellow or green), the rows in each format, and ``plate predict`` end to end with the shipped model."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CCPD_SAMPLE, SHIPPED, needs_sample

from plate_lib.cli import main
from plate_lib.config import PredictConfig
from plate_lib.predict import (
    COLUMNS,
    NOT_A_CROP,
    NOT_FOUND,
    crop_problem,
    expand_inputs,
    plate_kind,
    write_rows,
)
from plate_lib.synth import render_plate


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- inputs ---------------------------------------------------------------------------------------------


def test_a_folder_gives_its_image_files_recursively_and_sorted(tmp_path):
    # images of a format not read (TIFF, GIF) too: each becomes an error row saying so, not a file passed over
    for name in ["b.jpg", "a.PNG", "e.webp", "f.tif", "g.gif", "sub/c.bmp", "sub/deeper/d.jpeg", "labels.csv", "notes.txt"]:
        _touch(tmp_path / "crops" / name)
    _touch(tmp_path / "elsewhere" / "h.jpg")
    (tmp_path / "crops" / "linked").symlink_to(tmp_path / "elsewhere")  # a folder linked in is entered
    (tmp_path / "crops" / "latest").symlink_to(tmp_path / "crops" / "sub")  # a link inside the tree: files once
    found = expand_inputs([str(tmp_path / "crops")])
    assert [Path(p).relative_to(tmp_path / "crops").as_posix() for p, _ in found] == \
        ["a.PNG", "b.jpg", "e.webp", "f.tif", "g.gif", "linked/h.jpg", "sub/c.bmp", "sub/deeper/d.jpeg"]
    assert all(error == "" for _, error in found)


def test_a_glob_pattern_is_expanded_by_plate_lib_for_shells_that_do_not(tmp_path):
    for name in ["x1.jpg", "x2.jpg", "y.jpg", "x3.txt", "sub/x4.jpg"]:
        _touch(tmp_path / name)
    assert [Path(p).name for p, _ in expand_inputs([str(tmp_path / "x*")])] == ["x1.jpg", "x2.jpg"]
    # sorted as paths, as folders are: sub/x4.jpg before x1.jpg
    assert [Path(p).name for p, _ in expand_inputs([str(tmp_path / "**" / "x*.jpg")])] == ["x4.jpg", "x1.jpg", "x2.jpg"]


def test_names_that_lead_to_no_file_become_error_rows_in_their_place(tmp_path):
    _touch(tmp_path / "a.jpg")
    (tmp_path / "empty").mkdir()
    found = expand_inputs([str(tmp_path / "missing.jpg"), str(tmp_path / "a.jpg"), str(tmp_path / "empty"),
                           str(tmp_path / "*.webp")])
    assert [(Path(p).name, error.split(" (")[0]) for p, error in found] == [
        ("missing.jpg", "no such file or folder"), ("a.jpg", ""), ("empty", "folder holds no image files"),
        ("*.webp", "the pattern matches no image file")]


def test_dash_reads_one_path_a_line_from_standard_input_each_expanded_alike(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "dir" / "b.jpg")
    stdin = io.StringIO(f"{tmp_path / 'a.jpg'}\n\n  {tmp_path / 'dir'}  \n")
    assert [Path(p).name for p, _ in expand_inputs(["-"], stdin)] == ["a.jpg", "b.jpg"]
    assert expand_inputs(["-"], io.StringIO("")) == [("-", "standard input named no files")]


def test_standard_input_is_read_as_file_names_are_bytes_and_all(tmp_path):
    _touch(tmp_path / os.fsdecode(b"\xb2\xe2.jpg"))  # a GBK name from `find`: not UTF-8
    _touch(tmp_path / "a.jpg")
    stdin = io.TextIOWrapper(io.BytesIO(bytes(tmp_path) + b"/\xb2\xe2.jpg\n" + bytes(tmp_path) + b"/a.jpg\n"),
                             encoding="utf-8", errors="strict")
    assert [(Path(p).name, e) for p, e in expand_inputs(["-"], stdin)] == [(os.fsdecode(b"\xb2\xe2.jpg"), ""),
                                                                          ("a.jpg", "")]
    jpeg = io.TextIOWrapper(io.BytesIO(b"\xff\xd8\xff\xe0\0\x10JFIF\0\n~x\n"), encoding="utf-8")  # an image piped in
    ((name, error),) = expand_inputs(["-"], jpeg)
    assert name == "-" and "holds binary data, not file names" in error
    nul = io.TextIOWrapper(io.BytesIO(bytes(tmp_path) + b"/a.jpg\0" + bytes(tmp_path) + b"/\xb2\xe2.jpg\0"))  # find -print0
    assert [Path(p).name for p, _ in expand_inputs(["-"], nul)] == ["a.jpg", os.fsdecode(b"\xb2\xe2.jpg")]


def test_a_name_that_cannot_be_a_path_is_its_own_error_row_not_the_runs_end(tmp_path):
    _touch(tmp_path / "a.jpg")
    long = str(tmp_path / ("x" * 300 + ".jpg"))
    found = expand_inputs([str(tmp_path / "a.jpg"), long, "~nosuchuser_plate_lib/a.jpg"])
    assert [e for _, e in found] == ["", "cannot be read as a path (File name too long)", "no such file or folder"]


def test_a_home_folder_tilde_is_expanded_as_a_shell_would(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "dir" / "b.jpg")
    assert expand_inputs(["~/a.jpg", "~/dir", "~/*.jpg"]) == [(str(tmp_path / n), "") for n in ("a.jpg", "dir/b.jpg", "a.jpg")]


# --- what an image is -----------------------------------------------------------------------------------


@pytest.mark.parametrize("w, h", [(220, 70), (136, 36), (94, 24), (99, 80), (686, 117), (439, 258), (1200, 380),
                                  (1800, 476), (4000, 1060)],
                         ids=["corners", "lyl8213", "94x24", "squarest-bbox", "flattest-bbox", "tallest", "big-crop",
                              "phone-close-up", "plate-shaped-at-any-size"])
def test_plate_crop_shapes_measured_on_real_and_synthetic_sets_are_crops(w, h):
    assert crop_problem(w, h, PredictConfig()) == ""


@pytest.mark.parametrize("w, h, why", [(1920, 1080, "taller than predict.max_crop_height (400 px)"),
                                       (640, 480, "taller than"), (2340, 1080, "shaped like a photo (width/height below 2.4)"),
                                       (720, 1160, "width/height 0.62 is outside"),
                                       (400, 40, "width/height 10.00 is outside predict.crop_aspect [0.9, 8]")])
def test_photo_shapes_are_not_crops_and_the_problem_says_why(w, h, why):
    problem = crop_problem(w, h, PredictConfig())
    assert problem.startswith(f"{w}×{h} is not shaped like a plate crop: ") and why in problem


def _patch(bgr: tuple[int, int, int], w: int = 140, h: int = 44) -> np.ndarray:
    return np.full((h, w, 3), bgr, np.uint8)


def test_the_kind_is_green_for_8_characters_and_the_colour_for_7():
    yellow = _patch((40, 180, 220))
    assert plate_kind("皖AD12345", yellow) == "green"  # the length decides: green plates are 8 characters
    assert plate_kind("皖A12345", yellow) == "yellow"
    assert plate_kind("皖A12345", _patch((200, 80, 20))) == "blue"
    assert plate_kind("皖A1234", yellow) == "unknown"
    assert plate_kind("皖A12345", _patch((60, 200, 60))) == "unknown"  # 7 characters read from a green crop
    assert plate_kind("皖A12345D", yellow) == "yellow-green"  # a large vehicle's new-energy plate


# --- output ---------------------------------------------------------------------------------------------

ROWS = [
    {"file": "a\tb.jpg", "plate": "皖A12345", "confidence": 0.91234, "kind": "blue", "status": "ok", "error": "",
     "box": [500, 400, 720, 470]},  # a plate found in a whole photo
    {"file": "c.jpg", "plate": "", "confidence": None, "kind": "", "status": "error", "error": "c.jpg: empty file",
     "box": None},
]


def test_tsv_has_a_header_and_one_line_a_file_with_no_tab_inside_a_value():
    out = io.StringIO()
    counts = write_rows(iter(ROWS), "tsv", out)
    lines = out.getvalue().splitlines()
    assert lines[0].split("\t") == list(COLUMNS)
    assert lines[1].split("\t") == ["a b.jpg", "皖A12345", "0.9123", "blue", "ok", "", "500 400 720 470"]
    assert lines[2].split("\t") == ["c.jpg", "", "", "", "error", "c.jpg: empty file", ""]
    assert counts == {"ok": 1, "low_confidence": 0, "not_a_crop": 0, "error": 1}


def test_csv_and_json_read_back_as_the_rows():
    out = io.StringIO()
    write_rows(iter(ROWS), "csv", out)
    back = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert back[0]["file"] == "a\tb.jpg" and back[0]["confidence"] == "0.9123" and back[1]["confidence"] == ""
    assert back[0]["box"] == "500 400 720 470" and back[1]["box"] == ""
    out = io.StringIO()
    write_rows(iter(ROWS), "json", out)
    assert json.loads(out.getvalue()) == [{**ROWS[0], "confidence": 0.9123}, ROWS[1]]
    out = io.StringIO()
    write_rows(iter([]), "json", out)
    assert json.loads(out.getvalue()) == []


def test_a_carriage_return_in_a_file_name_stays_in_its_csv_cell():
    out = io.StringIO()
    write_rows(iter([{**ROWS[0], "file": "cr\rx.jpg"}, ROWS[1]]), "csv", out)
    back = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [r["file"] for r in back] == ["cr\rx.jpg", ROWS[1]["file"]]



@pytest.mark.parametrize("fmt", ["tsv", "csv", "json"])
def test_a_file_name_that_is_not_utf8_is_written_with_escapes_on_a_strict_utf8_stream(fmt):
    # os.fsdecode(b"a\xb3\xa4.jpg") (GBK bytes) keeps the bytes as surrogates; a UTF-8 terminal refused them mid-output
    name = os.fsdecode(b"a\xb3\xa4.jpg")
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
    counts = write_rows(iter([{**ROWS[0], "file": name}, ROWS[1]]), fmt, out)
    out.flush()
    text = raw.getvalue().decode("utf-8")
    assert counts["ok"] == 1 and counts["error"] == 1
    assert r"a\xb3\xa4.jpg" in (json.loads(text)[0]["file"] if fmt == "json" else text)

def test_read_plates_names_an_image_it_cannot_read_and_reads_a_grey_one_as_its_bgr():
    from plate_lib.graph import open_reader
    from plate_lib.images import DataError
    from plate_lib.reading import read_plates

    model, cfg, _ = open_reader(SHIPPED, "cpu")
    crop = render_plate("苏E1W8MQ", np.random.default_rng(0), degrade=0.0)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    assert read_plates(model, cfg, [grey]) == read_plates(model, cfg, [cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)])
    with pytest.raises(DataError, match="image 1 is None, not an image: cv2.imread gives None"):
        read_plates(model, cfg, [crop, cv2.imread("no-such-crop.jpg")])


def test_the_readme_python_block_reads_a_crop_and_a_folder(tmp_path, monkeypatch, capsys):
    readme = (SHIPPED.parents[1] / "README.md").read_text("utf-8")
    block = readme.split("### In Python\n\n```python\n", 1)[1].split("```", 1)[0]
    crop = render_plate("苏E1W8MQ", np.random.default_rng(0), degrade=0.0)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "plate_default.pt").symlink_to(SHIPPED)
    (tmp_path / "crops").mkdir()
    cv2.imwrite(str(tmp_path / "crop.jpg"), crop)
    car = np.full((720, 1280, 3), 90, np.uint8)
    car[400:470, 500:720] = render_plate("皖A12345", np.random.default_rng(0), 0.0, rectified=True)
    cv2.imwrite(str(tmp_path / "car.jpg"), car)
    cv2.imwrite(str(tmp_path / "crops" / "a.png"), crop)
    (tmp_path / "crops" / "b.jpg").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(block, scope)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[('苏E1W8MQ', ") and printed[1].startswith("[('皖A12345', ")
    assert scope["rows"][["file", "plate", "status"]].values.tolist() == [
        ["crops/a.png", "苏E1W8MQ", "ok"], ["crops/b.jpg", "", "error"]]


# --- plate predict, with the shipped model ---------------------------------------------------------------


@pytest.fixture
def images(tmp_path, monkeypatch) -> Path:
    """crops/ (a blue and a yellow plate, noise, a text file), a photo-sized image, a broken JPEG; cwd there."""
    rng = np.random.default_rng(0)
    (tmp_path / "crops" / "b").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "crops" / "blue.png"), render_plate("苏E1W8MQ", rng, degrade=0.0))
    cv2.imwrite(str(tmp_path / "crops" / "b" / "yellow.png"), render_plate("沪B96757", rng, 0.0, colour="yellow"))
    cv2.imwrite(str(tmp_path / "crops" / "noise.png"), rng.integers(0, 256, (36, 136, 3), np.uint8))
    (tmp_path / "crops" / "notes.txt").write_text("not an image")
    photo = np.full((720, 1280, 3), 90, np.uint8)
    photo[400:470, 500:720] = render_plate("皖A12345", rng, 0.0, rectified=True)  # a plate somewhere in a photo
    cv2.imwrite(str(tmp_path / "street_photo.jpg"), photo)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    monkeypatch.chdir(tmp_path)  # no cfg.yaml here: the built-in predict defaults
    return tmp_path


def predict(capsys, *args: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["predict", "--quiet", *args])
    return code, capsys.readouterr().out


def test_a_folder_is_read_into_one_row_a_file_with_kind_and_status(images, capsys):
    code, out = predict(capsys, "crops", "--format", "json")
    rows = {Path(r["file"]).name: r for r in json.loads(out)}
    assert code == 0 and list(rows) == ["yellow.png", "blue.png", "noise.png"]  # sorted: crops/b/ before crops/blue
    assert rows["blue.png"] | {"confidence": None} == {"file": str(Path("crops/blue.png")), "plate": "苏E1W8MQ",
                                                       "confidence": None, "kind": "blue", "status": "ok", "error": "",
                                                       "box": None}
    assert rows["blue.png"]["confidence"] >= PredictConfig().min_confidence
    assert rows["yellow.png"]["kind"] == "yellow"
    assert rows["noise.png"]["status"] == "low_confidence" and rows["noise.png"]["confidence"] < 0.1


def test_a_zip_is_read_in_place_one_row_a_member(images, capsys):
    import zipfile

    with zipfile.ZipFile("crops.zip", "w") as zf:
        zf.write("crops/blue.png", "z/blue.png")
        zf.write("crops/b/yellow.png", "z/b/yellow.png")
        zf.write("broken.jpg", "z/broken.jpg")
        zf.writestr("z/notes.txt", "not an image")
    code, out = predict(capsys, "crops.zip", "--format", "json")
    rows = {r["file"]: r for r in json.loads(out)}
    assert code == 1 and list(rows) == ["crops.zip:z/b/yellow.png", "crops.zip:z/blue.png", "crops.zip:z/broken.jpg"]
    assert (rows["crops.zip:z/blue.png"]["plate"], rows["crops.zip:z/b/yellow.png"]["kind"]) == ("苏E1W8MQ", "yellow")
    assert rows["crops.zip:z/broken.jpg"]["status"] == "error" and "crops.zip:z/broken.jpg" in rows[
        "crops.zip:z/broken.jpg"]["error"]
    with zipfile.ZipFile("notes.zip", "w") as zf:  # matched by the pattern, no images in it: not an input
        zf.writestr("notes.txt", "not an image")
    _, out = predict(capsys, "*.zip", "--format", "json")  # a pattern's zips too
    assert [r["file"] for r in json.loads(out)] == list(rows)
    with zipfile.ZipFile("twice.zip", "w") as zf:
        zf.write("crops/blue.png", "blue.png")
        with pytest.warns(UserWarning, match="Duplicate name"):  # one name, two members: which is meant?
            zf.write("crops/b/yellow.png", "blue.png")
    code, out = predict(capsys, "twice.zip", "--format", "json")
    assert code == 1 and json.loads(out)[0]["error"] == "stored 2 times in the zip (which is meant?)"
    Path("bad.zip").write_bytes(b"PK\x03\x04 cut short")
    code, out = predict(capsys, "bad.zip")
    assert code == 1 and "bad.zip\t\t\t\terror\t" in out


def test_a_zip_member_input_survives_pickling_and_copying():
    import copy
    import pickle

    from plate_lib.predict import ZipMember

    m = ZipMember("crops.zip", "z/blue.png")
    for back in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert back == "crops.zip:z/blue.png" and (back.archive, back.member) == ("crops.zip", "z/blue.png")


def test_a_bad_file_among_good_ones_is_an_error_row_and_the_exit_status_is_1(images, capsys):
    code, out = predict(capsys, "broken.jpg", "crops/blue.png", "missing.jpg")
    rows = list(csv.DictReader(io.StringIO(out), delimiter="\t"))
    assert code == 1
    assert [(r["file"], r["status"]) for r in rows] == [("broken.jpg", "error"), ("crops/blue.png", "ok"),
                                                        ("missing.jpg", "error")]
    assert rows[0]["error"].startswith("broken.jpg: JPEG data is truncated or corrupt")
    assert rows[2]["error"] == "no such file or folder"
    assert rows[1]["plate"] == "苏E1W8MQ"


def test_a_whole_photo_is_read_where_its_plate_is_found_by_colour_and_the_row_says_where(images, capsys):
    cv2.imwrite(str(images / "empty_street.jpg"), np.full((720, 1280, 3), 90, np.uint8))
    code, out = predict(capsys, "street_photo.jpg", "empty_street.jpg", "--format", "csv")
    found, empty = csv.DictReader(io.StringIO(out))
    assert code == 0 and (found["plate"], found["status"], found["kind"]) == ("皖A12345", "ok", "blue")
    x1, y1, x2, y2 = map(int, found["box"].split())  # the plate was drawn at x 500-720, y 400-470
    assert abs(x1 - 500) <= 12 and abs(y1 - 400) <= 8 and abs(x2 - 720) <= 12 and abs(y2 - 470) <= 8
    assert empty["status"] == "not_a_crop" and empty["plate"] == "" and empty["box"] == ""
    assert empty["error"] == f"{NOT_FOUND}; {crop_problem(1280, 720, PredictConfig())}"


def test_the_box_is_in_the_files_pixels_where_a_large_photo_is_decoded_reduced(images, capsys):
    photo = cv2.imread(str(images / "street_photo.jpg"))
    cv2.imwrite(str(images / "large.jpg"), cv2.resize(photo, (2816, 1584)))  # 4.5 megapixels: decoded at half size
    _, out = predict(capsys, "large.jpg", "--format", "json")
    (row,) = json.loads(out)
    assert row["plate"] == "皖A12345" and row["status"] == "ok"
    assert np.allclose(row["box"], np.multiply([500, 400, 720, 470], 2.2), atol=30)


def test_a_whole_photo_is_not_a_crop_and_is_not_read_where_find_in_photos_is_false(images, capsys):
    code, out = predict(capsys, "street_photo.jpg", "--format", "json", "--set", "predict.find_in_photos=false")
    (row,) = json.loads(out)
    assert code == 0 and row["status"] == "not_a_crop" and row["plate"] == "" and row["confidence"] is None
    assert row["error"] == f"{crop_problem(1280, 720, PredictConfig())}. {NOT_A_CROP}" and row["box"] is None


def test_a_glob_pattern_and_standard_input_name_files_as_folders_do(images, capsys, monkeypatch):
    _, out = predict(capsys, "crops/**/*.png", "--format", "csv")
    globbed = [r["file"] for r in csv.DictReader(io.StringIO(out))]
    assert [Path(f).name for f in globbed] == ["yellow.png", "blue.png", "noise.png"]  # sorted as a folder is
    _, out = predict(capsys, "-", "--format", "csv", stdin="crops/b/yellow.png\ncrops\n", monkeypatch=monkeypatch)
    listed = [r["file"] for r in csv.DictReader(io.StringIO(out))]
    assert [Path(f).name for f in listed] == ["yellow.png", "yellow.png", "blue.png", "noise.png"]


def test_the_threshold_comes_from_cfg_yaml_and_set_not_from_the_checkpoint(images, capsys):
    (images / "cfg.yaml").write_text("predict:\n  min_confidence: 0.0\n", encoding="utf-8")
    _, out = predict(capsys, "crops/noise.png", "--format", "json")
    assert json.loads(out)[0]["status"] == "ok"
    _, out = predict(capsys, "crops/blue.png", "--format", "json", "--set", "predict.min_confidence=1")
    assert json.loads(out)[0]["status"] == "low_confidence"


def test_the_batch_comes_from_cfg_yaml_and_set_not_from_the_checkpoint(images, capsys, monkeypatch):
    # the shipped checkpoint was trained with training.eval_batch_size 256; how many plates a batch reads is
    # the reading machine's matter (its cache), so plate predict takes it from cfg.yaml and --set
    from plate_lib import reading

    batches, read = [], reading.predict_images
    monkeypatch.setattr(reading, "predict_images", lambda model, images, *a, **k: batches.append(len(images))
                        or read(model, images, *a, **k))
    # (PyTorch: ONNX Runtime would also split the batch into parts for the CPU's cores, export.OnnxModel.in_parts)
    predict(capsys, "crops", "--set", "predict.rectify_below=0", "--set", "predict.runtime=torch")
    assert batches == [3]  # one batch: fewer files than the default 128
    (images / "cfg.yaml").write_text("training:\n  eval_batch_size: 2\npredict:\n  rectify_below: 0\n  runtime: torch\n",
                                     encoding="utf-8")
    batches.clear()
    predict(capsys, "crops")
    assert batches == [2, 1]  # the checkpoint's stored config says 256


def test_onnx_runtime_reads_the_same_plates_with_the_same_confidence(images, capsys):
    pytest.importorskip("onnxruntime")
    _, torch_out = predict(capsys, "crops", "--format", "json", "--set", "predict.runtime=torch")
    _, onnx_out = predict(capsys, "crops", "--format", "json", "--set", "predict.runtime=onnx")
    torch_rows, onnx_rows = json.loads(torch_out), json.loads(onnx_out)
    assert [(r["file"], r["plate"], r["status"]) for r in onnx_rows] == [(r["file"], r["plate"], r["status"])
                                                                        for r in torch_rows]
    assert [r["confidence"] for r in onnx_rows] == pytest.approx([r["confidence"] for r in torch_rows], abs=2e-4)


def test_test_time_views_are_a_setting_and_read_each_file_once_into_its_row(images, capsys):
    _, once = predict(capsys, "crops", "--format", "json")
    _, voted = predict(capsys, "crops", "--format", "json", "--set", "predict.tta=true")
    once_rows, voted_rows = json.loads(once), json.loads(voted)
    assert [r["file"] for r in voted_rows] == [r["file"] for r in once_rows]
    assert {r["plate"] for r in voted_rows if "blue" in r["file"]} == {"苏E1W8MQ"}
    code = main(["predict", "--quiet", "crops", "--set", "predict.tta=sometimes"])
    assert code == 2 and "predict.tta input should be a valid boolean" in capsys.readouterr().err


def test_onnx_runtime_on_a_gpu_is_refused_naming_the_setting(images, capsys, monkeypatch):
    import torch

    import plate_lib.inference

    monkeypatch.setattr(plate_lib.inference, "pick_device", lambda name: torch.device("cuda"))  # as if one answered
    code = main(["predict", "crops/blue.png", "--device", "cuda", "--set", "predict.runtime=onnx"])
    err = capsys.readouterr().err
    assert code == 2 and "predict.runtime onnx runs on the CPU" in err and "--device cpu" in err


def test_a_photo_named_by_its_ccpd_annotation_is_cut_out_never_not_a_crop(images, capsys):
    name = "01-90_90-500&400_720&470-720&470_500&470_500&400_720&400-0_0_1_2_3_4_5-100-10.jpg"
    photo = np.full((1160, 720, 3), 90, np.uint8)
    photo[400:470, 500:720] = render_plate("皖A12345", np.random.default_rng(1), 0.0, rectified=True)
    cv2.imwrite(str(images / name), photo)
    _, out = predict(capsys, name, "--format", "json")
    assert json.loads(out)[0]["status"] in ("ok", "low_confidence") and json.loads(out)[0]["plate"]


@needs_sample
def test_real_ccpd_photos_are_read_not_refused_as_photos(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = sorted((CCPD_SAMPLE / "ccpd_base").glob("*.jpg"))[:3]
    _, out = predict(capsys, *map(str, photos), "--format", "json")
    assert [r["status"] for r in json.loads(out)] == ["ok"] * 3 and {r["kind"] for r in json.loads(out)} == {"blue"}


def test_plate_predict_as_a_process_reads_paths_piped_in_and_exits_1_when_a_file_failed(images):
    proc = subprocess.run([sys.executable, "-m", "plate_lib", "predict", "-", "--format", "tsv"], cwd=images,
                          input="crops/blue.png\nbroken.jpg\n", capture_output=True, text=True, timeout=300)
    rows = list(csv.DictReader(io.StringIO(proc.stdout), delimiter="\t"))
    assert proc.returncode == 1 and [r["status"] for r in rows] == ["ok", "error"]
    assert "2 files: 1 ok, 1 error" in proc.stderr and "Traceback" not in proc.stderr


def test_version_names_plate_lib_and_the_libraries_it_runs_on(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("plate_lib 0.1.0 (Python 3.") and "\n" not in line  # one line for a bug report
    for lib in ("torch ", "torchvision ", "opencv-python", "onnxruntime"):
        assert lib in line


def test_a_config_file_says_how_to_read_data_over_the_checkpoints_config(tmp_path, capsys):
    crop = tmp_path / "a.jpg"
    cv2.imwrite(str(crop), np.full((40, 130, 3), 128, np.uint8))
    (tmp_path / "small.yaml").write_text("data: {max_file_mb: 0.0001}\n", encoding="utf-8")
    main(["predict", str(crop), "--config", str(tmp_path / "small.yaml"), "--quiet"])
    row = capsys.readouterr().out.strip().split("\n")[1]
    assert "over the" in row and "data.max_file_mb" in row


def test_a_folder_given_for_a_file_to_write_is_refused_before_the_work(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--out " + str(tmp_path) + " is a folder; expected the CSV file to write" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["export", "--onnx", str(tmp_path / "m.onnx"), "--n", "0"])
    assert refused.value.code == 2 and "expected a whole number, 1 or more" in capsys.readouterr().err
    assert main(["export", "--onnx", str(tmp_path)]) == 2
    assert "--onnx " + str(tmp_path) + " is a folder" in capsys.readouterr().err
