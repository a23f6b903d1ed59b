"""Bad input explains itself: bad images and labels in a zip or a folder fail naming the file, or with
skip_bad are counted and listed; bad paths, config, models and checkpoints exit 2 with one paragraph from the
CLI and no traceback (``--debug`` shows it); a cache cut short is rebuilt, never half-read. Hostile input is
refused the same way, and read in bounded memory: a checkpoint whose pickle would run code, a zip bomb, an
image over the pixel cap, a run.name or labels.csv entry that leads out of its folder, an empty split.

Cases covered elsewhere: a zero-byte file, a text file named .jpg and a label of the wrong length in a folder
(test_dataset), a label of the wrong length in a zip (test_sources), an unknown key, a wrong type and a
negative learning rate as ``ConfigError`` (test_config), a missing data path and a negative learning rate
through the CLI (test_cli), a model the checkpoint does not fit through the CLI (test_cli, fine-tuning); checkpoints
as data (test_checkpoints), a full disk (test_checkpoints, test_dataset), labels.csv encodings and names, file
sizes and pixel caps in detail (test_sources)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import LegacyZipInfo, plate_jpeg, png_header, write_dl1_zip

from plate_lib.checkpoints import CheckpointError, model_spec, read_checkpoint, save_checkpoint
from plate_lib.config import PreprocessConfig, load
from plate_lib.dataset import load_split
from plate_lib.images import decode_image
from plate_lib.models import build_model
from plate_lib.plates import SYMBOLS
from plate_lib.sources import DataError, open_source

PRE = PreprocessConfig(height=48, width=144, grayscale=True)


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def write_samples(tmp_path: Path, kind: str, files: dict[str, bytes]) -> Path:
    """``files`` (paths under train/ or test/) as a dl1 zip or a crops folder."""
    if kind == "zip":
        path = tmp_path / "data.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(LegacyZipInfo(f"CCPD2019-dl1/{name}"), data)
        return path
    root = tmp_path / "crops"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


GOOD = plate_jpeg("皖A12345")
BAD = {  # file → what the error says
    "test/1-皖A11111.jpg": (GOOD[: len(GOOD) // 2], "truncated"),
    "test/2-皖A22222.jpg": (b"", "empty file"),
    "test/3-皖A33333.jpg": (b"plate: not really an image\n", "not a decodable image"),
    "test/4-皖A44444.png": (png(np.zeros((1, 1, 3), np.uint8)), "too small"),
    "test/5-皖A5555#.jpg": (GOOD, "after the city letter"),  # an unknown character
    "test/6-皖A66666666.jpg": (GOOD, "10 characters"),  # the wrong length
}


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_each_bad_sample_is_named_with_its_reason(tmp_path, kind):
    path = write_samples(tmp_path, kind, {"test/0-皖A12345.jpg": GOOD, **{n: d for n, (d, _) in BAD.items()}})
    with pytest.raises(DataError, match="skip_bad") as e:
        load_split(open_source(path), "test", PRE, workers=1)
    labels_first = str(e.value)  # labels are checked before images are decoded
    assert "5-皖A5555#.jpg" in labels_first and "6-皖A66666666.jpg" in labels_first

    data = load_split(open_source(path), "test", PRE, skip_bad=True, workers=1)
    assert data.texts == ["皖A12345"]
    skipped = {Path(n).name: why for n, why in data.skipped}
    assert len(skipped) == len(BAD)
    for name, (_, reason) in BAD.items():
        assert reason in skipped[Path(name).name], (name, skipped[Path(name).name])


def test_a_truncated_jpeg_is_a_data_error_even_when_only_its_end_marker_is_missing():
    for cut in (len(GOOD) // 3, len(GOOD) - 2):
        with pytest.raises(DataError, match=r"cut\.jpg: JPEG .*truncated"):
            decode_image(GOOD[:cut], "cut.jpg")


def test_png_with_alpha_loads_with_transparent_pixels_black():
    bgra = np.full((40, 120, 4), 255, np.uint8)
    bgra[:, :60, 3] = 0  # left half transparent (white underneath)
    img = decode_image(png(bgra), "alpha.png")
    assert img.shape == (40, 120, 3) and img.dtype == np.uint8
    assert img[:, :60].max() == 0 and img[:, 60:].min() == 255


def test_16_bit_png_loads_scaled_to_8_bits():
    img16 = np.full((40, 120, 3), 40000, np.uint16)
    img = decode_image(png(img16), "deep.png")
    assert img.dtype == np.uint8 and img.shape == (40, 120, 3) and int(img[0, 0, 0]) == 40000 >> 8
    grey16 = decode_image(png(np.full((40, 120), 65535, np.uint16)), "grey16.png")
    assert grey16.shape == (40, 120, 3) and grey16.min() == 255


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_alpha_and_16_bit_pngs_load_alongside_jpegs(tmp_path, kind):
    files = {"test/1-皖A11111.png": png(np.full((40, 120, 4), 200, np.uint8)),
             "test/2-皖A22222.png": png(np.full((40, 120, 3), 50000, np.uint16)), "test/3-皖A33333.jpg": GOOD}
    data = load_split(open_source(write_samples(tmp_path, kind, files)), "test", PRE, workers=1)
    assert len(data) == 3 and data.images.shape == (3, 48, 144, 1) and not data.skipped


@pytest.mark.parametrize("fmt", [".jpg", ".png"])
def test_a_6000_pixel_image_is_decoded_reduced_then_letterboxed(tmp_path, fmt):
    big = np.zeros((6000, 6000, 3), np.uint8)
    big[2500:3500, 1000:5000] = 255  # a white plate-shaped band
    buf = cv2.imencode(fmt, big)[1].tobytes()
    img = decode_image(buf, f"big{fmt}")
    assert max(img.shape[:2]) <= 2000 and img.shape[0] == img.shape[1]  # JPEG: 1/4 scale in the decoder; PNG: resized
    data = load_split(open_source(write_samples(tmp_path, "folder", {f"test/1-皖A12345{fmt}": buf})), "test", PRE,
                      workers=1)
    assert data.images.shape == (1, 48, 144, 1) and data.images.max() == 255


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_same_name_in_different_case_keeps_both_files_and_warns(tmp_path, kind, caplog):
    (tmp_path / "Case").write_text("")
    if kind == "folder" and (tmp_path / "case").exists():
        pytest.skip("this file system ignores case: it cannot hold both files")
    files = {"test/1-皖A12345.jpg": plate_jpeg(seed=1), "test/1-皖A12345.JPG": plate_jpeg(seed=2)}
    with caplog.at_level(logging.WARNING):
        data = load_split(open_source(write_samples(tmp_path, kind, files)), "test", PRE, workers=1)
    assert len(data) == 2 and len(set(data.names)) == 2
    assert not np.array_equal(data.images[0], data.images[1])
    assert "differ only in case" in caplog.text and "1-皖A12345.JPG" in caplog.text


# --- the cache ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate npy", "truncate json", "drop json", "swap npy"])
def test_a_damaged_cache_is_rebuilt_with_a_warning_never_half_read(tmp_path, caplog, damage):
    zpath = write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A00000", "苏A11111", "沪B22222"]})
    cache = tmp_path / "cache"
    first = load_split(open_source(zpath), "test", PRE, cache, workers=1)
    npy, js = next(cache.glob("*.npy")), next(cache.glob("*.json"))
    if damage == "truncate npy":
        npy.write_bytes(npy.read_bytes()[: npy.stat().st_size - 1000])
    elif damage == "truncate json":
        js.write_text(js.read_text(encoding="utf-8")[:40], encoding="utf-8")
    elif damage == "drop json":
        js.unlink()
    else:  # an array of the right size but another shape
        np.save(npy, np.zeros((1, 48 * 3, 144, 1), np.uint8))
    with caplog.at_level(logging.WARNING):
        again = load_split(open_source(zpath), "test", PRE, cache, workers=1)
    assert again.texts == first.texts and np.array_equal(np.asarray(again.images), first.images)
    if damage != "drop json":  # a missing index is simply a cache miss
        assert "incomplete or damaged" in caplog.text and "rebuilding" in caplog.text
    assert isinstance(load_split(open_source(zpath), "test", PRE, cache).images, np.memmap)  # sound again


# --- through the CLI: exit 2, one paragraph, no traceback -------------------------------------------------------

TINY = ["--quiet", "--set", "data.source=d.zip", "--set", "model.hidden=16", "--set", "training.epochs=1",
        "--set", "run.device=cpu"]


def plate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plate_lib", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def small_checkpoint(path: Path, *overrides: str, **extra) -> Path:
    cfg = load(None, ["model.hidden=16", *overrides])
    save_checkpoint(path, build_model(cfg.model.name, model_spec(cfg)), cfg, **extra)
    return path


def _other_symbols(tmp: Path) -> Path:
    path = small_checkpoint(tmp / "other.pt")
    ck = torch.load(path, weights_only=True)
    ck["alphabet"]["symbols"] = SYMBOLS[:-1] + ["-"]
    torch.save(ck, path)
    return path


def _truncated(path: Path) -> Path:
    small_checkpoint(path, epoch=0, step=1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _other_provinces_last(tmp: Path) -> None:
    small_checkpoint(tmp / "runs/default/last.pt", "provinces=[皖, 苏]", epoch=0, step=1)


def _empty_train(tmp: Path) -> None:
    (tmp / "crops" / "train").mkdir(parents=True)
    (tmp / "crops" / "test").mkdir()
    (tmp / "crops" / "test" / "1-皖A12345.jpg").write_bytes(GOOD)


class _RunsCode:
    """Unpickling this creates the folder ``it-ran`` (a harmless stand-in for ``os.system``)."""

    def __reduce__(self):
        return os.mkdir, ("it-ran",)


def _code_checkpoint(tmp: Path) -> None:
    torch.save({"format": "plate_lib/1", "model": {}, "x": _RunsCode()}, tmp / "evil.pt")


def _crops(tmp: Path, files: dict[str, bytes], labels: bytes | None = None) -> None:
    for name, data in files.items():
        (tmp / "crops" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "crops" / name).write_bytes(data)
    if labels is not None:
        (tmp / "crops" / "labels.csv").write_bytes(labels)


def _bomb(tmp: Path) -> None:
    with zipfile.ZipFile(tmp / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CCPD2019-dl1/test/0-皖A12345.jpg", bytes(17 * 2**20))  # 17 MB of zeros in 17 KB


def _empty_zip(tmp: Path) -> None:
    with zipfile.ZipFile(tmp / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "no plates")


EVAL = ["evaluate", "--device", "cpu", "--data"]

CLI_CASES = {  # id: (set-up, arguments, what stderr must say)
    "missing data path": (None, ["train", *TINY, "--set", "data.source=missing.zip"], ["missing.zip does not exist"]),
    "directory where a zip was expected": (lambda t: (t / "dir.zip").mkdir(),
                                           ["train", *TINY, "--set", "data.source=dir.zip"],
                                           ["dir.zip is a directory, expected a zip file"]),
    "unknown key in --set": (None, ["train", *TINY, "--set", "training.epoch=3"],
                             ["unknown key 'epoch' in training", "'epochs'"]),
    "unknown key in the config file": (lambda t: (t / "bad.yaml").write_text("training:\n  lr_max: 0.1\n"),
                                       ["train", "--config", "bad.yaml", *TINY], ["bad.yaml", "'training.lr_max'"]),
    "wrong type": (None, ["train", *TINY, "--set", "training.batch_size=lots"], ["training.batch_size", "'lots'"]),
    "negative learning rate": (None, ["train", *TINY, "--set", "training.lr=-0.001"], ["training.lr", "-0.001"]),
    "image size the model cannot take": (None, ["train", *TINY, "--set", "model.name=seed_crnn",
                                                "--set", "preprocess.height=16"], ["seed_crnn cannot take 16×144"]),
    "unknown model name": (None, ["train", *TINY, "--set", "model.name=resnet9"],
                           ["'resnet9' is not registered", "small_crnn"]),
    "checkpoint from another symbol alphabet": (_other_symbols,
                                                ["evaluate", "--checkpoint", "other.pt", "--data", "d.zip"],
                                                ["other.pt was trained with another symbol alphabet"]),
    "resume from a checkpoint over other provinces": (_other_provinces_last, ["train", *TINY, "--resume"],
                                                      ["last.pt (--resume) holds a small_crnn_lite over 2 provinces",
                                                       "this run trains small_crnn_lite over 31"]),
    "truncated checkpoint to evaluate": (lambda t: _truncated(t / "cut.pt"),
                                         ["evaluate", "--checkpoint", "cut.pt", "--data", "d.zip"],
                                         ["cut.pt cannot be read: it is truncated"]),
    "truncated last.pt to resume": (lambda t: _truncated(t / "runs/default/last.pt"), ["train", *TINY, "--resume"],
                                    ["last.pt cannot be read: it is truncated"]),
    "truncated checkpoint to fine-tune from": (lambda t: _truncated(t / "cut.pt"),
                                               ["train", *TINY, "--set", "training.init_from=cut.pt"],
                                               ["cut.pt cannot be read"]),
    "empty train folder": (_empty_train, ["train", *TINY, "--set", "data.source=crops"],
                           ["the train split of crops is empty", "under train/"]),
    "a CUDA device on a machine without one": (None, ["train", *TINY, "--set", "run.device=cuda"],
                                               ["no CUDA device answers"]),
    "checkpoint whose pickle would run code": (_code_checkpoint, ["predict", "--checkpoint", "evil.pt", "crop.jpg"],
                                               ["evil.pt is refused", f"({os.mkdir.__module__}.mkdir)",
                                                "plate convert-checkpoint evil.pt NEW.pt"]),
    "run.name that leads out of runs/": (None, ["train", *TINY, "--set", "run.name=../../somewhere"],
                                         ["run.name value error, expected a plain name", "'../../somewhere'"]),
    "zip member declared over the size cap": (_bomb, [*EVAL, "bomb.zip"],
                                              ["0-皖A12345.jpg: 17.0 MB (its declared size in the zip), over the 16 MB "
                                               "cap (data.max_file_mb)"]),
    "image over the pixel cap": (lambda t: _crops(t, {"test/1-皖A12345.png": png_header(20000, 20000)}),
                                 [*EVAL, "crops"], ["1-皖A12345.png: PNG header says 20000×20000 pixels"]),
    "labels.csv naming a file outside its folder": (
        lambda t: _crops(t, {"a.jpg": GOOD}, "file,label\na.jpg,皖A12345\n../../etc/passwd,皖A12346\n".encode()),
        [*EVAL, "crops", "--split", "all"], ["labels.csv:3: file name '../../etc/passwd' leads outside"]),
    "labels.csv in UTF-16": (lambda t: _crops(t, {"a.jpg": GOOD}, "file,label\na.jpg,皖A12345\n".encode("utf-16")),
                             [*EVAL, "crops"], ["labels.csv: cannot be read as UTF-8, UTF-8 with BOM, or GB18030/GBK"]),
    "evaluate a zip without images": (_empty_zip, [*EVAL, "empty.zip"],
                                      ["the test split of empty.zip is empty: no image files (.jpg, .jpeg, .png, .bmp, .webp)"]),
    "evaluate a split with no plates": (lambda t: write_dl1_zip(t / "train.zip", {"train": ["皖A12345", "苏B88888"]}),
                                        [*EVAL, "train.zip"], ["the test split of train.zip is empty: 2 image file(s)",
                                                               "`--split all` reads all 2"]),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_reports_user_errors_in_one_paragraph_without_traceback(tmp_path, case):
    setup, args, says = CLI_CASES[case]
    if case.startswith("a CUDA") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    write_dl1_zip(tmp_path / "d.zip", {"train": ["皖A12345", "苏B88888"] * 4, "test": ["皖A54321"]})
    if setup is not None:
        setup(tmp_path)
    proc = plate(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    error = proc.stderr[proc.stderr.index(f"plate {args[0]}: error:"):]
    for text in says:
        assert text in error, f"{text!r} not in:\n{error}"
    assert error.rstrip().endswith("(run with --debug for the traceback)")
    assert not (tmp_path / "it-ran").exists(), "a checkpoint's code ran"


def test_debug_shows_the_traceback(tmp_path):
    proc = plate(tmp_path, "train", *TINY, "--set", "model.name=resnet9", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ModelError" in proc.stderr


def test_a_truncated_checkpoint_is_a_checkpoint_error_never_loaded(tmp_path):
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(_truncated(tmp_path / "cut.pt"))


# --- skip_bad: counted and listed in the run log and summary.json --------------------------------------------------


def test_skip_bad_lists_skipped_samples_in_train_log_and_summary(tmp_path):
    from plate_lib.train import fit

    plates = ["皖A12345", "苏B88888", "沪AD1234", "皖AD12345", "浙C0L1A7", "京A00001"] * 4
    files = {f"train/{i:03d}-{p}.jpg": plate_jpeg(p, seed=i) for i, p in enumerate(plates)}
    files |= {"train/900-皖A1234.jpg": GOOD, "train/901-皖A99999.jpg": b"", "test/1-皖A54321.jpg": GOOD}
    src = write_samples(tmp_path, "zip", files)
    sets = {"data.source": str(src), "data.skip_bad": True, "data.cache_dir": str(tmp_path / "cache"),
            "training.out_dir": str(tmp_path / "runs"), "training.epochs": 1, "training.batch_size": 8,
            "model.hidden": 16, "run.device": "cpu", "training.threads": 1}
    threads = torch.get_num_threads()
    try:
        run = fit(load(None, sets), progress=False)
    finally:
        torch.set_num_threads(threads)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    skipped = [n for split in summary["skipped"].values() for n, _ in split]
    assert sum(summary["skipped_count"].values()) == 2 == len(skipped)
    assert {Path(n).name for n in skipped} == {"900-皖A1234.jpg", "901-皖A99999.jpg"}
    log_text = (run / "train.log").read_text(encoding="utf-8")
    for name in skipped:
        assert Path(name).name in log_text
    assert "2 bad sample(s) skipped" in log_text


# --- hostile files: bounded memory ------------------------------------------------------------------------------


@pytest.mark.slow
def test_hostile_files_stay_under_1_gb_of_peak_memory(tmp_path):
    """A 2 GiB zip bomb (declared honestly, or declared 1 KB), a valid 20000×20000 PNG and a progressive JPEG
    whose header says 20000×20000, each read by ``load_split`` in its own process (``benchmarks/``)."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hostile_memory.py"
    cases = ["zip_bomb", "zip_liar", "huge_png", "huge_jpeg"]
    proc = subprocess.run([sys.executable, str(bench), "--cases", *cases, "--out", str(tmp_path / "m.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    says = {"zip_bomb": "2048.0 MB (its declared size in the zip)", "zip_liar": "cannot be read from the zip",
            "huge_png": "PNG header says 20000×20000", "huge_jpeg": "JPEG header says 20000×20000"}
    for case in cases:
        r = results[case]
        assert r["plates"] == 0 and says[case] in r["skipped"][0], (case, r)
        assert r["peak_rss_mb"] < 1024, f"{case}: peak RSS {r['peak_rss_mb']} MB"


def test_the_report_refuses_an_empty_evaluation_set(tmp_path):
    from plate_lib.analysis import evaluate_sets

    write_dl1_zip(tmp_path / "d.zip", {"train": ["皖A12345"] * 2, "test": ["皖A54321"]})
    _empty_zip(tmp_path)
    ckpt = small_checkpoint(tmp_path / "m.pt")
    cfg = load(None, {"data.source": str(tmp_path / "d.zip"), "data.eval_sets": [str(tmp_path / "empty.zip")],
                      "data.cache_dir": str(tmp_path / "cache"), "model.hidden": 16})
    with pytest.raises(DataError, match=r"the all split of .*empty\.zip is empty: no image files .* Point this "
                                        r"data\.eval_sets entry at plate crops or CCPD2019 photos, or remove it"):
        evaluate_sets(cfg, ckpt, "cpu")
