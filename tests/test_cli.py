"""End to end through the command line: generate → train → evaluate → predict, in a temporary folder."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CCPD_SAMPLE, SHIPPED, needs_sample

from plate_lib.inference import load_model

pytestmark = pytest.mark.slow


def plate(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "plate_lib", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"plate {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


TRAIN = ["--quiet", "--set", "data.source=syn.zip", "--set", "training.batch_size=16", "--set", "training.epochs=2",
         "--set", "model.hidden=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("e2e")
    out = plate("generate", "--out", "syn.zip", "--n", "96", "--n-test", "24", "--quiet", cwd=work).stdout
    assert "96 train + 24 test" in out and (work / "syn.zip").is_file()
    out = plate("train", *TRAIN, cwd=work).stdout
    assert "best validation word accuracy" in out
    return work


def test_training_leaves_a_complete_run_folder(trained):
    run = trained / "runs" / "default"
    for name in ["best.pt", "last.pt", "metrics.csv", "config.yaml", "env.json", "summary.json"]:
        assert (run / name).is_file(), f"{name} missing from the run folder"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["train_loss"]) > 0 and 0 <= float(rows[-1]["val_word_acc"]) <= 1


def test_evaluate_prints_one_json_object_with_the_headline_metrics(trained):
    out = plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "syn.zip", cwd=trained).stdout
    result = json.loads(out)
    assert result["n"] == 24
    for key in ["word_acc", "char_acc", "cer", "province_acc", "province_acc_non_wan"]:
        assert key in result
    # predict.runtime auto: ONNX Runtime on the CPU where it is installed (make setup installs it)
    assert result["runtime"] == ("onnx" if importlib.util.find_spec("onnxruntime") else "torch")


def test_evaluate_takes_a_profile_as_it_takes_set_and_makes_the_out_folder_first(trained):
    (trained / "val.yaml").write_text("data.val_fraction: 0.5\n", encoding="utf-8")  # a key of the checkpoint's config
    by_set = json.loads(plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "syn.zip", "--split", "val",
                              "--set", "data.val_fraction=0.5", cwd=trained).stdout)
    by_profile = json.loads(plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "syn.zip", "--split",
                                  "val", "--profile", "val.yaml", "--out", "new/dir/rows.csv", cwd=trained).stdout)
    assert by_profile["n"] == by_set["n"] > 30  # half of the 96 train plates held out either way (0.15: about 14)
    assert (trained / "new" / "dir" / "rows.csv").is_file()
    (trained / "recipe.yaml").write_text("preprocess.height: 64\ntraining.epochs: 9\n", encoding="utf-8")
    refused = plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "syn.zip", "--profile", "recipe.yaml",
                    cwd=trained, check=False)  # what the network was trained on is the checkpoint's, not a profile's
    assert refused.returncode == 2 and "preprocess.height: fixed by the checkpoint" in refused.stderr


def test_evaluate_by_colour_splits_the_plates_by_colour_and_adds_up_to_the_whole(trained):
    out = plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "syn.zip", "--by-colour",
                cwd=trained).stdout
    result = json.loads(out)
    colours = result["colours"]
    assert colours and set(colours) <= {"blue", "yellow", "green", "unknown"}
    assert sum(c["n"] for c in colours.values()) == result["n"]
    assert sum(c["n"] * c["word_acc"] for c in colours.values()) == pytest.approx(result["n"] * result["word_acc"])


def test_predict_prints_a_header_then_a_plate_and_confidence_per_image(trained, tmp_path):
    import zipfile

    with zipfile.ZipFile(trained / "syn.zip") as zf:
        name = next(n for n in zf.namelist() if n.endswith(".jpg"))
        (tmp_path / "crop.jpg").write_bytes(zf.read(name))
    out = plate("predict", "--checkpoint", str(trained / "runs/default/best.pt"), str(tmp_path / "crop.jpg"),
                cwd=tmp_path).stdout
    header, line = out.strip("\n").splitlines()
    assert header.split("\t") == ["file", "plate", "confidence", "kind", "status", "error", "box"]
    path, text, conf, kind, status, error, box = line.split("\t")
    assert path.endswith("crop.jpg") and 0 <= float(conf) <= 1 and status in ("ok", "low_confidence") and not error and not box


def test_a_checkpoint_loads_without_cfg_yaml(trained, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no cfg.yaml here
    model, cfg = load_model(trained / "runs/default/best.pt")
    assert cfg.model.name == "small_crnn_lite" and cfg.model.hidden == 32 and len(cfg.provinces) == 31


def test_resume_continues_from_the_last_epoch(trained):
    run = trained / "runs" / "default"
    steps = int(list(csv.DictReader((run / "metrics.csv").open()))[-1]["step"])
    plate("train", *TRAIN, "--set", "training.epochs=3", "--resume", cwd=trained)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and int(rows[-1]["step"]) == steps * 3 // 2


def test_user_errors_exit_2_with_one_paragraph_and_no_traceback(trained):
    proc = plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", "nope.zip", cwd=trained, check=False)
    assert proc.returncode == 2
    assert "nope.zip does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = plate("train", "--set", "training.lr=-1", cwd=trained, check=False)
    assert proc.returncode == 2 and "training.lr" in proc.stderr and "Traceback" not in proc.stderr


@needs_sample
def test_evaluate_reads_ccpd_photos_directly(trained):
    out = plate("evaluate", "--checkpoint", "runs/default/best.pt", "--data", str(CCPD_SAMPLE), "--split", "all",
                cwd=trained).stdout
    result = json.loads(out)
    assert result["n"] == 622
    assert set(result["subsets"]) == {"ccpd_base", "ccpd_green"} and result["subsets"]["ccpd_green"]["n"] == 5


def test_export_writes_onnx_that_matches_pytorch(trained):
    pytest.importorskip("onnxruntime")
    proc = plate("export", "--checkpoint", "runs/default/best.pt", "--onnx", "model.onnx", "--data", "syn.zip", cwd=trained)
    parity = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (trained / "model.onnx").is_file()
    assert parity["ok"] and parity["max_abs_diff"] <= 1e-4 and parity["plates_identical"] and parity["n"] == 24


def test_fine_tuning_starts_from_a_checkpoint_and_refuses_another_model(trained):
    plate("train", *TRAIN, "--set", "training.epochs=1", "--set", "run.name=tuned",
          "--set", "training.init_from=runs/default/best.pt", cwd=trained)
    assert (trained / "runs/tuned/best.pt").is_file()
    proc = plate("train", *TRAIN, "--set", "model.name=seed_crnn", "--set", "run.name=bad",
                 "--set", "training.init_from=runs/default/best.pt", cwd=trained, check=False)
    assert proc.returncode == 2 and "small_crnn" in proc.stderr and "Traceback" not in proc.stderr


# --- the shipped model ----------------------------------------------------------------------------------



def test_the_shipped_model_is_small_and_self_describing():
    assert SHIPPED.stat().st_size <= 5 * 2**20
    model, cfg = load_model(SHIPPED)
    assert cfg.model.name == "small_crnn_lite" and len(cfg.provinces) == 31


def test_predict_without_a_checkpoint_uses_the_shipped_model(tmp_path):
    import cv2
    import numpy as np

    from plate_lib.synth import render_plate

    cv2.imwrite(str(tmp_path / "crop.png"), render_plate("苏E1W8MQ", np.random.default_rng(0), degrade=0.0))
    proc = plate("predict", "crop.png", cwd=tmp_path)  # no runs/ or models/ here: the repo's models/ is found
    assert proc.stdout.splitlines()[1].split("\t")[1] == "苏E1W8MQ"
    assert "plate_default.pt" in proc.stderr


@needs_sample
def test_the_shipped_model_reads_real_sample_photos(tmp_path):
    photos = sorted((CCPD_SAMPLE / "ccpd_green").glob("*.jpg"))[:2] + sorted((CCPD_SAMPLE / "ccpd_base").glob("*.jpg"))[:3]
    from plate_lib.sources import parse_ccpd_name

    out = plate("predict", *map(str, photos), cwd=tmp_path).stdout.strip().splitlines()[1:]  # after the header
    assert [line.split("\t")[1] for line in out] == [parse_ccpd_name(p.name)[0] for p in photos]
