"""Interruption and reruns lose nothing: a run killed mid-epoch and resumed ends where an unbroken one does,
two runs of one seed write the same metrics.csv byte for byte, and a finished run is reused, not retrained."""

from __future__ import annotations

import filecmp
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_dl1_zip

from plate_lib.checkpoints import CheckpointError
from plate_lib.config import ConfigError, load
from plate_lib.runs import METRIC_FIELDS, TIMING_FIELDS, finished_run_differs, keep_rows
from plate_lib.sources import DataError
from plate_lib.train import check_layout, fit

PLATES = ["皖A12345", "苏B88888", "沪AD1234", "皖AD12345", "浙C0L1A7", "京A00001", "皖N12Q45", "鲁Q99999"]


@pytest.fixture
def tiny_zip(tmp_path: Path) -> Path:
    return write_dl1_zip(tmp_path / "d.zip", {"train": PLATES * 12, "test": PLATES[:3]})


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()  # fit sets training.threads for the process
    yield
    torch.set_num_threads(threads)


def small_cfg(tmp_path: Path, source: Path, **sets):
    base = {"data.source": str(source), "data.cache_dir": str(tmp_path / "cache"), "training.out_dir": str(tmp_path / "runs"),
            "training.batch_size": 16, "training.epochs": 2, "model.hidden": 16, "run.device": "cpu", "training.threads": 1}
    return load(None, base | sets)


def test_two_runs_with_the_same_seed_write_byte_identical_metrics_csv(tmp_path, tiny_zip, keep_threads):
    one = fit(small_cfg(tmp_path, tiny_zip, **{"run.name": "one"}), progress=False)
    two = fit(small_cfg(tmp_path, tiny_zip, **{"run.name": "two"}), progress=False)
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
    assert (one / "metrics.csv").read_text().splitlines()[0] == ",".join(METRIC_FIELDS)  # no timing columns
    timings = (one / "timings.csv").read_text().splitlines()
    assert timings[0] == ",".join(TIMING_FIELDS) and [r.split(",")[0] for r in timings[1:]] == ["1", "2"]


def test_reuse_returns_a_finished_run_of_the_same_config_code_and_data(tmp_path, tiny_zip, keep_threads, caplog,
                                                                        monkeypatch):
    caplog.set_level(logging.INFO, logger="plate_lib")
    cfg = small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1})
    run = fit(cfg, progress=False)
    stamp = (run / "last.pt").stat().st_mtime_ns

    assert fit(cfg, progress=False, reuse=True) == run
    assert "reusing the finished run" in caplog.text and (run / "last.pt").stat().st_mtime_ns == stamp

    caplog.clear()
    monkeypatch.setattr("plate_lib.runs.code_version", lambda: "edited")
    fit(cfg, progress=False, reuse=True)
    assert "the plate_lib code changed" in caplog.text and (run / "last.pt").stat().st_mtime_ns != stamp
    monkeypatch.undo()

    caplog.clear()
    fit(cfg, progress=False, reuse=True)  # the summary records the real code version again
    assert "reusing" in caplog.text
    monkeypatch.setattr("plate_lib.runs.code_version", lambda: "edited")  # benchmarks may look past the code
    assert finished_run_differs(cfg, run) == "the plate_lib code changed"
    assert finished_run_differs(cfg, run, check_code=False) is None
    monkeypatch.undo()
    caplog.clear()
    fit(cfg.model_copy(update={"run": cfg.run.model_copy(update={"seed": 1})}), progress=False, reuse=True)
    assert "the config differs (run.seed)" in caplog.text

    caplog.clear()
    write_dl1_zip(tiny_zip, {"train": PLATES[::-1] * 12, "test": PLATES[:3]})  # same config, other data
    fit(cfg.model_copy(update={"run": cfg.run.model_copy(update={"seed": 1})}), progress=False, reuse=True)
    assert "the training data changed" in caplog.text


def test_resume_keeps_only_whole_rows_of_checkpointed_epochs(tmp_path):
    path = tmp_path / "metrics.csv"
    header = ",".join(METRIC_FIELDS)
    path.write_bytes(f"{header}\r\n1,4,0.1,2,2,0,0,1,0\r\n2,8,0.1,2,2,0,0,1,0\r\n3,12,0.1,2,2,0\r\n".encode())
    keep_rows(path, 2, METRIC_FIELDS)  # epoch 3's row was half written when the run was killed
    assert path.read_bytes() == f"{header}\r\n1,4,0.1,2,2,0,0,1,0\r\n2,8,0.1,2,2,0,0,1,0\r\n".encode()
    keep_rows(path, 1, METRIC_FIELDS)
    assert path.read_bytes().count(b"\r\n") == 2


# --- a real kill ----------------------------------------------------------------------------------------------

SETTINGS = ["--quiet", "--set", "data.source=d.zip", "--set", "training.batch_size=4", "--set", "training.epochs=2",
            "--set", "model.hidden=16", "--set", "training.threads=1", "--set", "run.device=cpu"]


def _train(*args: str) -> list[str]:
    return [sys.executable, "-m", "plate_lib", "train", *SETTINGS, *args]


def _written_after(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_mtime_ns > b.stat().st_mtime_ns
    except FileNotFoundError:  # not written yet, or replaced between the two calls
        return False


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_reaches_the_same_weights_and_metrics(tmp_path, tiny_zip):
    env = {**os.environ, "PLATE_CHECKPOINT_STEPS": "1"}  # resume.pt after every step
    done = subprocess.run(_train("--set", "run.name=unbroken"), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    run = tmp_path / "runs" / "cut"
    proc = subprocess.Popen(_train("--set", "run.name=cut"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # wait for the second epoch's mid-epoch checkpoints (written after last.pt), let it take a few steps
        deadline, seen = time.monotonic() + 240, set()
        while len(seen) < 3 and time.monotonic() < deadline and proc.poll() is None:
            if _written_after(run / "resume.pt", run / "last.pt"):
                st = (run / "resume.pt").stat()
                seen.add((st.st_ino, st.st_mtime_ns))  # each write is a new file (os.replace)
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    ck = torch.load(run / "resume.pt", weights_only=True)
    per_epoch = torch.load(run / "last.pt", weights_only=True)["step"]  # last.pt: the end of epoch 1
    assert ck["epoch"] == 1 and 0 < ck["batch"] < per_epoch, f"killed at epoch 2, batch {ck['batch']}: not mid-epoch"
    assert not (run / "summary.json").exists() and len((run / "metrics.csv").read_text().splitlines()) == 2

    resumed = subprocess.run(_train("--set", "run.name=cut", "--resume"), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed {Path('runs/cut/resume.pt')} at epoch 2, batch {ck['batch']}" in resumed.stderr

    a = torch.load(tmp_path / "runs/unbroken/last.pt", weights_only=True)
    b = torch.load(run / "last.pt", weights_only=True)
    assert a["step"] == b["step"] > ck["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"{k} differs by {(a['model'][k] - b['model'][k]).abs().max():.2e}"
    assert filecmp.cmp(tmp_path / "runs/unbroken/metrics.csv", run / "metrics.csv", shallow=False)
    assert not (run / "resume.pt").exists()  # removed at the end of the epoch
    assert "resumed" in (run / "train.log").read_text(encoding="utf-8")


def test_best_pt_is_the_most_accurate_epoch_and_on_a_tie_the_one_with_lower_validation_loss(tmp_path, tiny_zip,
                                                                                            keep_threads):
    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 3}), progress=False)
    rows = [dict(zip(METRIC_FIELDS, line.split(","), strict=True))
            for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    expected = max(rows, key=lambda r: (float(r["val_word_acc"]), -float(r["val_loss"])))
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] + 1 == int(expected["epoch"])


def test_a_finished_run_from_before_a_config_key_existed_is_still_reused(tmp_path, tiny_zip):
    import json

    import yaml

    from plate_lib.runs import config_text, run_inputs

    cfg = small_cfg(tmp_path, tiny_zip)
    run = tmp_path / "runs" / "default"
    run.mkdir(parents=True)
    stored = yaml.safe_load(config_text(cfg))
    del stored["data"]["max_file_mb"]  # written by a plate_lib without the key, which is at its default now
    (run / "config.yaml").write_text(yaml.safe_dump(stored, allow_unicode=True), "utf-8")
    (run / "summary.json").write_text(json.dumps(run_inputs(cfg)), "utf-8")
    for name in ("best.pt", "last.pt", "metrics.csv"):
        (run / name).write_bytes(b"")
    assert finished_run_differs(cfg, run) is None
    other = small_cfg(tmp_path, tiny_zip, **{"data.max_file_mb": 1})
    assert finished_run_differs(other, run) == "the config differs (data.max_file_mb)"
    stored["data"]["retired_key"] = 1  # a key this plate_lib no longer knows: the run differs
    (run / "config.yaml").write_text(yaml.safe_dump(stored, allow_unicode=True), "utf-8")
    assert finished_run_differs(cfg, run).startswith("the config differs")


def test_a_finished_run_is_reused_whatever_the_predict_section_says(tmp_path, tiny_zip):
    import json

    from plate_lib.runs import config_text, run_inputs

    cfg = small_cfg(tmp_path, tiny_zip)
    run = tmp_path / "runs" / "default"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(config_text(cfg), "utf-8")
    (run / "summary.json").write_text(json.dumps(run_inputs(cfg)), "utf-8")
    for name in ("best.pt", "last.pt", "metrics.csv"):
        (run / name).write_bytes(b"")
    # predict.* only changes how plate predict reports readings: no reason to train again
    assert finished_run_differs(small_cfg(tmp_path, tiny_zip, **{"predict.min_confidence": 0.9}), run) is None


def test_epoch_plates_sets_the_steps_of_an_epoch_whatever_the_data_holds(tmp_path, tiny_zip, keep_threads):
    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.epoch_plates": 32}), progress=False)  # batches of 16
    steps = [row.split(",")[1] for row in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["2", "4"]


LAYOUT = {"n_train": 96, "epoch_plates": 96, "batch_size": 16, "processes": 1}


@pytest.mark.parametrize(("changed", "named"), [
    ({"batch_size": 32}, "training.batch_size 16; this run has 32"),
    ({"epoch_plates": 200}, "training.epoch_plates (plates drawn an epoch) 96; this run has 200"),
    ({"n_train": 90}, "the training set's size 96; this run has 90"),
    ({"processes": 2}, "the number of torchrun processes 1; this run has 2"),
])
def test_a_mid_epoch_checkpoint_is_refused_when_the_epochs_batches_would_differ(changed, named):
    # the batches left in the epoch are drawn again from (n_train, epoch_plates, batch_size, processes): any change
    # would train on other plates than the unbroken run, so the resume names what changed and how to go on
    with pytest.raises(CheckpointError, match=re.escape(named)) as err:
        check_layout(LAYOUT, LAYOUT | changed, Path("runs/x/resume.pt"))
    assert "delete runs/x/resume.pt to resume from last.pt" in str(err.value)


def test_a_mid_epoch_checkpoint_of_the_same_layout_or_from_before_layouts_were_stored_resumes():
    check_layout(LAYOUT, dict(LAYOUT), Path("resume.pt"))
    check_layout({"n_train": 96}, LAYOUT | {"batch_size": 32}, Path("resume.pt"))  # an older resume.pt: n_train only


def test_keep_epochs_keeps_each_epochs_weights_and_plate_average_takes_their_mean(tmp_path, tiny_zip, keep_threads,
                                                                                   capsys):
    from plate_lib.cli import main

    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.keep_epochs": True}), progress=False)
    epochs = [run / "epoch1.pt", run / "epoch2.pt"]
    assert all(p.is_file() for p in epochs)
    last, first = (torch.load(p, weights_only=True) for p in (run / "last.pt", epochs[0]))
    assert all(torch.equal(v, torch.load(epochs[1], weights_only=True)["model"][k]) for k, v in last["model"].items())
    assert "optimizer" not in first  # weights to average, not a state to resume
    assert main(["average", *map(str, epochs), "--out", str(tmp_path / "mean.pt")]) == 0
    assert "the mean of 2 checkpoints' weights" in capsys.readouterr().out
    mean = torch.load(tmp_path / "mean.pt", weights_only=True)
    for k, v in mean["model"].items():
        if v.is_floating_point():
            assert torch.allclose(v, (first["model"][k] + last["model"][k]) / 2)
    assert mean["averaged_from"] == ["epoch1.pt", "epoch2.pt"] and mean["config"] == last["config"]
    fit(small_cfg(tmp_path, tiny_zip, **{"run.name": "plain", "training.epochs": 1}), progress=False)
    assert not list((tmp_path / "runs" / "plain").glob("epoch*.pt"))  # off by default
    fit(small_cfg(tmp_path, tiny_zip, **{"training.keep_epochs": True, "training.epochs": 1}), progress=False)
    assert sorted(p.name for p in run.glob("epoch*.pt")) == ["epoch1.pt"]  # a fresh run keeps no older epochs


@pytest.mark.slow
def test_sigterm_stops_a_run_as_ctrl_c_does_said_and_logged(tmp_path, tiny_zip):
    env = {**os.environ, "PLATE_CHECKPOINT_STEPS": "1"}
    run = tmp_path / "runs" / "term"
    proc = subprocess.Popen(_train("--set", "run.name=term", "--set", "training.epochs=50"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "resume.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143 and "plate train: interrupted; `plate train --resume` continues" in err
    assert "interrupted: " in (run / "train.log").read_text(encoding="utf-8")  # the run's own record says so too


# --- a fresh start never deletes a run; --resume continues only what it can ------------------------------------


def test_a_fresh_start_keeps_the_previous_run_aside_even_when_it_then_fails(tmp_path, tiny_zip, keep_threads, caplog):
    cfg = small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1})
    run = fit(cfg, progress=False)
    best = (run / "best.pt").read_bytes()
    with pytest.raises(DataError, match="does not exist"):  # a typo'd rerun: it fails before training
        fit(small_cfg(tmp_path, tmp_path / "nope.zip", **{"training.epochs": 1}), progress=False)
    assert "held a finished run (1 epoch(s)" in caplog.text and "kept aside as" in caplog.text
    assert "is back in" in caplog.text and (run / "best.pt").read_bytes() == best  # it wrote nothing: put back
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default"]
    fit(cfg, progress=False)  # a run that trains keeps the one before aside: default.1, then default.2
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1, "training.init_from": str(run / "best.pt")}),
        progress=False)  # fine-tuning from the run it replaces: its checkpoint is read where it went
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default", "default.1", "default.2"]
    assert (tmp_path / "runs" / "default.1" / "best.pt").read_bytes() == best
    assert "2 earlier run(s) of this name are kept beside it (" in caplog.text  # what they take: nothing prunes them
    assert "default.1, default.2); delete those you no longer need" in caplog.text
    assert "training.init_from" in caplog.text and "default.2/best.pt (the run it came from was kept aside)" in caplog.text


def test_a_throwaway_run_replaces_the_one_before_only_once_it_has_finished(tmp_path, tiny_zip, keep_threads, caplog):
    cfg = small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1, "run.keep_replaced": False})
    run = fit(cfg, progress=False)
    best = (run / "best.pt").read_bytes()
    with pytest.raises(DataError, match="does not exist"):  # a start that fails: the run before is back, whole
        fit(small_cfg(tmp_path, tmp_path / "nope.zip", **{"training.epochs": 1, "run.keep_replaced": False}),
            progress=False)
    assert (run / "best.pt").read_bytes() == best
    fit(cfg, progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default"]  # nothing kept aside
    assert "run.keep_replaced is false" in caplog.text
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1, "run.keep_replaced": False,
                                         "training.init_from": str(run / "best.pt")}), progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default", "default.1"]  # its weights' source stays
    assert "default.1 kept: this run started from its weights" in caplog.text


def test_resume_with_nothing_to_resume_is_an_error_not_a_fresh_start(tmp_path, tiny_zip, keep_threads):
    with pytest.raises(ConfigError, match=r"--resume: .*typo holds no last\.pt or resume\.pt to continue from"):
        fit(small_cfg(tmp_path, tiny_zip, **{"run.name": "typo"}), resume=True, progress=False)


def test_resume_refuses_a_config_that_changes_what_the_run_was_trained_with(tmp_path, tiny_zip, keep_threads):
    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"trained with training\.lr=0\.005; this config changes training\.lr\."):
        fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 2, "training.lr": 0.05}), resume=True, progress=False)
    assert (run / "metrics.csv").read_bytes() == before  # nothing touched
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 2, "training.threads": 2}), resume=True, progress=False)
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # more epochs, other threads: extended


def test_training_from_scratch_on_few_real_plates_says_to_fine_tune_instead(tmp_path, tiny_zip, keep_threads, caplog):
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
    assert re.search(r"training from scratch on \d+ plates, without synthetic ones: too few", caplog.text)
    assert "--profile profiles/finetune.yaml" in caplog.text


def test_a_throwaway_run_never_deletes_a_real_run_of_its_name(tmp_path, tiny_zip, keep_threads, caplog):
    real = fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
    best = (real / "best.pt").read_bytes()
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1, "run.keep_replaced": False}), progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default", "default.1"]
    assert (tmp_path / "runs" / "default.1" / "best.pt").read_bytes() == best
    assert "default.1 kept: it was not a throwaway run" in caplog.text


def test_a_run_fine_tuned_from_the_run_it_replaced_resumes_with_the_same_command(tmp_path, tiny_zip, keep_threads):
    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
    again = {"training.epochs": 1, "training.init_from": str(run / "best.pt")}  # now read from default.1
    fit(small_cfg(tmp_path, tiny_zip, **again), progress=False)
    import shutil

    shutil.rmtree(tmp_path / "runs" / "default.1")  # the weights it started from: not needed to resume
    fit(small_cfg(tmp_path, tiny_zip, **again | {"training.epochs": 2}), resume=True, progress=False)
    gone = {"training.init_from": str(tmp_path / "runs" / "default.1" / "best.pt"), "training.epochs": 3}
    fit(small_cfg(tmp_path, tiny_zip, **gone), resume=True, progress=False)  # init_from names a deleted file
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    with pytest.raises(ConfigError, match=r"training\.init_from .*nope\.pt is not a checkpoint file here"):
        fit(small_cfg(tmp_path, tiny_zip, **{"run.name": "other", "training.init_from": str(tmp_path / "nope.pt")}),
            progress=False)


def test_resume_refuses_training_data_whose_content_changed(tmp_path, tiny_zip, keep_threads):
    run = fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
    os.utime(tiny_zip)  # a copy or a checkout changes the files' times, not the plates: resumed
    fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), resume=True, progress=False)
    write_dl1_zip(tiny_zip, {"train": PLATES * 20, "test": PLATES[:3]})  # more plates under the same name
    with pytest.raises(ConfigError, match=r"--resume: the training data changed since .*last\.pt was written"):
        fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 2}), resume=True, progress=False)
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # untouched


def test_a_file_where_the_run_folder_goes_is_an_error_naming_it(tmp_path, tiny_zip, keep_threads):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "default").write_text("notes", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"runs/default is a file, where the run folder goes"):
        fit(small_cfg(tmp_path, tiny_zip, **{"training.epochs": 1}), progress=False)
