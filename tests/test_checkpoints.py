"""Checkpoints hold data, not code: every file plate_lib writes loads with ``weights_only=True``, a file that
would build other objects is refused without running anything, older checkpoints still load or say how to
convert them, and a full disk leaves the previous checkpoint as it was."""

from __future__ import annotations

import datetime
import errno
import os
import pickle
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHIPPED

from plate_lib import checkpoints
from plate_lib.checkpoints import (
    CheckpointError,
    convert_checkpoint,
    model_spec,
    read_checkpoint,
    rebuild,
    save_checkpoint,
)
from plate_lib.config import load
from plate_lib.errors import DiskFullError
from plate_lib.models import build_model
from plate_lib.plates import BLANK, SYMBOLS


def small(path: Path, **extra) -> Path:
    cfg = load(None, ["model.hidden=16"])
    save_checkpoint(path, build_model(cfg.model.name, model_spec(cfg)), cfg, **extra)
    return path


def data_only(path: Path) -> dict:
    """The checkpoint as ``torch.load(weights_only=True)`` reads it, after checking it names no object at all."""
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    return torch.load(path, weights_only=True)


def test_the_shipped_model_loads_with_weights_only_true():
    ck = data_only(SHIPPED)
    assert ck["format"] == checkpoints.FORMAT and ck["model_name"] == "small_crnn_lite"
    model, cfg = rebuild(read_checkpoint(SHIPPED), SHIPPED)
    assert len(cfg.provinces) == 31 and sum(p.numel() for p in model.parameters()) > 0


def test_a_mid_epoch_resume_checkpoint_with_optimiser_and_rng_states_loads_with_weights_only_true(tmp_path):
    from plate_lib.train import EpochState, _build, _save_resume

    cfg = load(None, ["model.hidden=16", "run.device=cpu"])
    model, opt = _build(cfg, torch.device("cpu"))
    prov, ctc = model(torch.rand(2, 1, 48, 144))
    (prov.sum() + ctc.sum()).backward()
    opt.step()  # the optimiser now holds per-parameter state
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    aug_gen = torch.Generator().manual_seed(0)
    _save_resume(tmp_path / "resume.pt", model, opt, scaler, aug_gen, cfg, torch.device("cpu"), 0,
                 EpochState(batch=1, seen=2, loss_sum=1.5), time.perf_counter(), (0.5, -1.0),
                 {"n_train": 10, "epoch_plates": 10, "batch_size": 2, "processes": 1}, 1)
    ck = data_only(tmp_path / "resume.pt")
    assert {"optimizer", "torch_rng", "py_rng", "np_rng", "aug_rng", "partial", "best", "layout"} <= set(ck)
    opt.load_state_dict(ck["optimizer"])  # what --resume does with it
    assert read_checkpoint(tmp_path / "resume.pt")["batch"] == 1


def test_rng_states_survive_a_weights_only_checkpoint_exactly(tmp_path):
    from plate_lib.train import rng_states, set_rng_states

    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    states = rng_states(torch.device("cpu"))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    small(tmp_path / "rng.pt", **states)
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    set_rng_states(data_only(tmp_path / "rng.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class RunsCode:
    """Unpickling this creates ``marker`` (a harmless stand-in for ``os.system``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _torch_zip(path: Path, payload) -> None:
    torch.save({"format": checkpoints.FORMAT, "model": {}, "evil": payload}, path)


def _torch_legacy(path: Path, payload) -> None:
    torch.save({"format": checkpoints.FORMAT, "evil": payload}, path, _use_new_zipfile_serialization=False)


def _plain_pickle(path: Path, payload) -> None:
    path.write_bytes(pickle.dumps({"format": checkpoints.FORMAT, "evil": payload}))


@pytest.mark.parametrize("write", [_torch_zip, _torch_legacy, _plain_pickle], ids=["torch zip", "torch legacy", "pickle"])
def test_a_checkpoint_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path, write):
    marker = tmp_path / "it-ran"
    write(tmp_path / "evil.pt", RunsCode(marker))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists(), "loading the checkpoint ran its code"
    says = str(e.value)
    assert "evil.pt is refused" in says and "can run code" in says and "plate convert-checkpoint" in says
    if write is _torch_zip:
        assert f"{os.mkdir.__module__}.mkdir" in says  # the object it wanted, named from the file


def test_an_older_checkpoint_with_numpy_rng_state_still_loads_as_data(tmp_path):
    cfg = load(None, ["model.hidden=16"])
    state = {"format": checkpoints.FORMAT, "model_name": cfg.model.name, "spec": asdict(model_spec(cfg)),
             "config": cfg.to_dict(), "alphabet": {"provinces": list(cfg.provinces), "symbols": SYMBOLS, "blank": BLANK},
             "model": build_model(cfg.model.name, model_spec(cfg)).state_dict(),
             "np_rng": np.random.get_state(), "val": {"val_word_acc": np.float64(0.5)}}  # as plate_lib wrote them
    torch.save(state, tmp_path / "old.pt")
    ck = read_checkpoint(tmp_path / "old.pt")
    assert ck["np_rng"][1] == np.random.get_state()[1].tolist() and type(ck["val"]["val_word_acc"]) is float


def test_convert_checkpoint_rewrites_a_trusted_older_checkpoint_as_data(tmp_path, capsys):
    from plate_lib.cli import main

    ck = torch.load(small(tmp_path / "new.pt"), weights_only=True)
    ck["val"] = {"source": Path("data/synthetic.zip")}  # an object the safe loader refuses
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"pathlib\.\w*Path.*convert-checkpoint"):
        read_checkpoint(tmp_path / "old.pt")
    convert_checkpoint(tmp_path / "old.pt", tmp_path / "converted.pt")
    assert data_only(tmp_path / "converted.pt")["val"] == {"source": "data/synthetic.zip"}
    assert main(["convert-checkpoint", str(tmp_path / "old.pt"), str(tmp_path / "cli.pt")]) == 0
    assert "weights_only=True" in capsys.readouterr().out and read_checkpoint(tmp_path / "cli.pt")


def test_saving_an_object_that_is_not_data_is_refused_naming_where_it_sits(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['val'\]\['when'\] is a datetime.date"):
        small(tmp_path / "x.pt", val={"when": datetime.date(2024, 1, 1)})
    assert not (tmp_path / "x.pt").exists()


def test_a_checkpoint_whose_spec_disagrees_with_its_config_is_refused_before_building(tmp_path):
    ck = torch.load(small(tmp_path / "ok.pt"), weights_only=True)
    ck["spec"]["hidden"] = 1_000_000  # a model of terabytes, if it were built from the spec alone
    torch.save(ck, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="does not match its stored config"):
        rebuild(read_checkpoint(tmp_path / "edited.pt"), tmp_path / "edited.pt")


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = small(tmp_path / "best.pt", epoch=1)
    monkeypatch.setattr(os, "fsync", _disk_full)  # the write reaches the disk's limit as it is flushed
    with pytest.raises(DiskFullError) as e:
        small(path, epoch=2)
    monkeypatch.undo()
    says = str(e.value)
    assert str(path) in says and "no space left" in says and " KB" in says and "previous best.pt is untouched" in says
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left behind


@pytest.mark.slow
def test_a_full_disk_during_training_exits_2_and_keeps_last_pt(tmp_path, monkeypatch, capsys):
    from conftest import write_dl1_zip

    from plate_lib.cli import main

    monkeypatch.chdir(tmp_path)
    write_dl1_zip(tmp_path / "d.zip", {"train": ["皖A12345", "苏B88888", "沪AD1234", "浙C0L1A7"] * 6, "test": ["皖A54321"]})
    args = ["train", "--quiet", "--set", "data.source=d.zip", "--set", "model.hidden=16", "--set", "run.device=cpu",
            "--set", "training.threads=1", "--set", "training.batch_size=8"]
    threads = torch.get_num_threads()
    try:
        assert main([*args, "--set", "training.epochs=1"]) == 0
        before = (tmp_path / "runs/default/last.pt").read_bytes()
        monkeypatch.setattr(os, "fsync", _disk_full)
        assert main([*args, "--set", "training.epochs=2", "--resume"]) == 2
    finally:
        torch.set_num_threads(threads)
        monkeypatch.undo()
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "is untouched" in err and "Traceback" not in err
    assert (tmp_path / "runs/default/last.pt").read_bytes() == before
    assert read_checkpoint(tmp_path / "runs/default/best.pt")["epoch"] == 0


def test_averaging_refuses_checkpoints_of_different_models_naming_what_differs(tmp_path):
    from plate_lib.checkpoints import average_checkpoints

    a = small(tmp_path / "a.pt")
    cfg = load(None, ["model.hidden=32"])
    save_checkpoint(tmp_path / "b.pt", build_model(cfg.model.name, model_spec(cfg)), cfg)
    with pytest.raises(CheckpointError, match=r"b\.pt is not the same model as .*a\.pt: its spec differs"):
        average_checkpoints([a, tmp_path / "b.pt"], tmp_path / "mean.pt")
    with pytest.raises(CheckpointError, match="two checkpoints or more, got 1"):
        average_checkpoints([a], tmp_path / "mean.pt")
    assert not (tmp_path / "mean.pt").exists()


def test_an_average_of_two_copies_of_a_checkpoint_is_that_checkpoint_and_loads_as_data(tmp_path):
    from plate_lib.checkpoints import average_checkpoints

    for name in ("a.pt", "b.pt"):
        (tmp_path / name).write_bytes(SHIPPED.read_bytes())
    out = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "mean.pt")
    mean, shipped = data_only(out), torch.load(SHIPPED, weights_only=True)
    assert all(torch.equal(v, shipped["model"][k]) for k, v in mean["model"].items())
    assert mean["averaged_from"] == ["a.pt", "b.pt"] and "optimizer" not in mean
    model, cfg = rebuild(read_checkpoint(out), out)  # loads as any checkpoint does
    assert len(cfg.provinces) == 31 and cfg.model.name == shipped["model_name"]


def test_a_file_that_is_no_pytorch_checkpoint_is_named_as_such(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    with pytest.raises(CheckpointError, match=r"model\.onnx is not a PyTorch checkpoint .*an ONNX graph\?"):
        read_checkpoint(tmp_path / "model.onnx")


def test_one_checkpoint_given_twice_or_a_pattern_matching_nothing_is_refused(tmp_path):
    from plate_lib.checkpoints import average_checkpoints

    with pytest.raises(CheckpointError, match="is given twice: each checkpoint counts once"):
        average_checkpoints([SHIPPED, SHIPPED], tmp_path / "mean.pt")
    with pytest.raises(CheckpointError, match=r"got 1 \(runs/x/epoch\*\.pt: no such file; did a pattern match nothing\?\)"):
        average_checkpoints(["runs/x/epoch*.pt"], tmp_path / "mean.pt")


def test_checkpoints_whose_tensors_differ_in_shape_are_not_averaged(tmp_path):
    from plate_lib.checkpoints import average_checkpoints

    ck = torch.load(SHIPPED, weights_only=True)
    name = next(iter(ck["model"]))
    ck["model"][name] = torch.zeros(3)
    torch.save(ck, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="holds other tensors than"):
        average_checkpoints([SHIPPED, tmp_path / "other.pt"], tmp_path / "mean.pt")
    assert not (tmp_path / "mean.pt").exists()


def test_checkpoints_whose_tensors_differ_in_type_are_not_averaged(tmp_path):
    from plate_lib.checkpoints import average_checkpoints

    ck = torch.load(SHIPPED, weights_only=True)
    name = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][name] = ck["model"][name].long()
    torch.save(ck, tmp_path / "ints.pt")
    with pytest.raises(CheckpointError, match="holds other tensors than"):
        average_checkpoints([tmp_path / "ints.pt", SHIPPED], tmp_path / "mean.pt")


def test_a_checkpoint_nested_too_deep_is_refused_not_a_traceback(tmp_path):
    import sys

    deep: list = []
    for _ in range(5_000):  # deeper than Python's default recursion limit (1,000): crafted, or damaged
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # for torch.save's pickler only
    try:
        torch.save({"format": "plate_lib/1", "x": deep}, tmp_path / "deep.pt")
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(CheckpointError, match="nested too deep"):
        read_checkpoint(tmp_path / "deep.pt")


def test_a_conversion_that_its_own_check_refuses_leaves_no_file(tmp_path, monkeypatch):
    import plate_lib.checkpoints as checkpoints

    def refuse(path, *args, **kwargs):
        raise CheckpointError(f"{path}: refused")

    monkeypatch.setattr(checkpoints, "read_checkpoint", refuse)
    ck = torch.load(SHIPPED, weights_only=True)
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="refused"):
        checkpoints.convert_checkpoint(tmp_path / "old.pt", tmp_path / "new.pt")
    assert not (tmp_path / "new.pt").exists()
