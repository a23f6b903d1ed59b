"""The graph cache: ``plate predict`` reads with the graph exported from the same checkpoint before, without
importing torch, and a cache that is damaged, full, unwritable or turned off never stops a reading."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, SHIPPED

from plate_lib import graph
from plate_lib.config import load as load_config
from plate_lib.synth import render_plate

pytest.importorskip("onnxruntime")

READ_AND_SAY_IF_TORCH = ("import sys; from plate_lib.cli import main; code = main(sys.argv[1:]); "
                         "print('torch imported:', 'torch' in sys.modules); sys.exit(code)")


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, (text, colour) in enumerate([("苏E1W8MQ", "blue"), ("沪B96757", "yellow"), ("粤BD12345", "green")]):
        cv2.imwrite(str(folder / f"{i}.png"), render_plate(text, rng, 0.0, colour=colour))
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "graphs"
    monkeypatch.setenv("PLATE_LIB_CACHE", str(folder))
    return folder


def plate_predict(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLATE_LIB_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", READ_AND_SAY_IF_TORCH, "predict", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_plate_predict_reads_with_the_graph_it_exported_before_and_never_imports_torch_then(crops, cache):
    first = plate_predict(str(crops), "--checkpoint", str(SHIPPED), "--device", "cpu", cache=cache)
    assert first.returncode == 0, first.stderr
    assert "torch imported: True" in first.stdout and len(list(cache.glob("*.onnx"))) == 1
    again = plate_predict(str(crops), "--checkpoint", str(SHIPPED), "--device", "cpu", cache=cache)
    assert again.returncode == 0, again.stderr
    assert "torch imported: False" in again.stdout and "the graph exported from this checkpoint before" in again.stderr
    rows = [line for line in first.stdout.splitlines() if not line.startswith("torch imported")]
    assert [line for line in again.stdout.splitlines() if not line.startswith("torch imported")] == rows
    assert len(rows) == 4 and "苏E1W8MQ" in rows[1]  # a header and a row a crop, plates and confidences the same


def test_the_cached_graph_reads_what_the_pytorch_exported_one_reads(crops, cache):
    from plate_lib.export import OnnxModel
    from plate_lib.inference import load_model
    from plate_lib.reading import read_plates
    from plate_lib.sources import load_image_file

    model, cfg = load_model(SHIPPED)
    exported = OnnxModel(model, cfg.preprocess)
    graph.store(SHIPPED, exported.graph, cfg)
    reader, cached_cfg, _ = graph.cached_reader(SHIPPED)
    assert cached_cfg == cfg  # the checkpoint's own config, provinces and input size with it
    images = [load_image_file(str(p)) for p in sorted(crops.glob("*.png"))] * 6  # 18: read in parts
    assert read_plates(reader, cached_cfg, images, tta=True) == read_plates(exported, cfg, images, tta=True)


def test_a_cached_graph_belongs_to_the_checkpoints_bytes_not_its_path(tmp_path, cache):
    cfg = load_config(None)
    graph.store(SHIPPED, b"graph", cfg)
    copy = tmp_path / "elsewhere.pt"
    shutil.copy(SHIPPED, copy)
    assert graph.graph_key(copy) == graph.graph_key(SHIPPED)
    with copy.open("r+b") as f:  # retrained in place: other bytes, another graph
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    assert graph.graph_key(copy) != graph.graph_key(SHIPPED) and graph.cached_reader(copy) is None


def test_a_damaged_cached_graph_is_passed_over_said_in_the_log_and_exported_again(crops, cache, caplog, capsys):
    from plate_lib.cli import main

    assert main(["predict", "--quiet", str(crops), "--checkpoint", str(SHIPPED), "--device", "cpu"]) == 0
    good = capsys.readouterr().out
    onnx = next(cache.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:5000])  # cut short, as by a full disk before the rename existed
    with caplog.at_level(logging.WARNING, logger="plate_lib.graph"):
        assert graph.cached_reader(SHIPPED) is None
    assert f"{onnx} not used" in caplog.text and "exporting the checkpoint again" in caplog.text
    assert main(["predict", "--quiet", str(crops), "--checkpoint", str(SHIPPED), "--device", "cpu"]) == 0
    assert capsys.readouterr().out == good and graph.cached_reader(SHIPPED) is not None  # written whole again


def test_a_cached_config_this_version_does_not_accept_is_passed_over(cache, caplog):
    graph.store(SHIPPED, b"graph", load_config(None))
    meta = next(cache.glob("*.json"))
    data = json.loads(meta.read_text(encoding="utf-8"))
    data["config"]["predict"]["rectify_below"] = 7
    meta.write_text(json.dumps(data), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="plate_lib.graph"):
        assert graph.cached_reader(SHIPPED) is None
    assert "rectify_below" in caplog.text


def test_plate_lib_cache_off_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATE_LIB_CACHE", "off")
    assert graph.cache_dir() is None
    assert graph.store(SHIPPED, b"graph", load_config(None)) is None and graph.cached_reader(SHIPPED) is None


def test_the_cache_defaults_to_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PLATE_LIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert graph.cache_dir() == tmp_path / "plate_lib" / "graphs"


def test_a_cache_that_cannot_be_written_leaves_reading_alone(crops, tmp_path, monkeypatch, capsys):
    from plate_lib.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PLATE_LIB_CACHE", str(blocker / "graphs"))
    assert graph.store(SHIPPED, b"graph", load_config(None)) is None
    assert main(["predict", "--quiet", str(crops), "--checkpoint", str(SHIPPED), "--device", "cpu"]) == 0
    assert "苏E1W8MQ" in capsys.readouterr().out


def test_a_full_disk_while_storing_a_graph_leaves_the_kept_one_and_no_part_file(tmp_path, cache, monkeypatch):
    cfg = load_config(None)
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"checkpoint")
    kept = graph.store(ckpt, b"the graph kept before", cfg)

    def fill_the_disk(self, data):
        with open(self, "wb") as f:
            f.write(data[:4])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fill_the_disk)
    assert graph.store(ckpt, b"a graph the disk has no room for", cfg) is None
    monkeypatch.undo()
    assert kept.read_bytes() == b"the graph kept before"
    assert sorted(p.name for p in cache.iterdir()) == sorted([kept.name, kept.with_suffix(".json").name])


def test_the_cache_keeps_the_graphs_of_the_checkpoints_read_last(tmp_path, cache):
    cfg = load_config(None)
    checkpoints = []
    for i in range(graph.KEEP_GRAPHS + 2):
        ckpt = tmp_path / f"m{i}.pt"
        ckpt.write_bytes(f"checkpoint {i}".encode())
        checkpoints.append(ckpt)
        path = graph.store(ckpt, b"graph", cfg)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # stored one after another
    kept = {p.stem for p in cache.glob("*.onnx")}
    assert kept == {graph.graph_key(c) for c in checkpoints[2:]}
    assert {p.stem for p in cache.glob("*.json")} == kept  # each graph's config goes with it


def test_reading_imports_no_torch():
    code = ("import sys; import plate_lib.cli, plate_lib.graph, plate_lib.predict, plate_lib.reading, "
            "plate_lib.errors; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("where", ["missing.pt", "."], ids=["missing", "a-folder"])
def test_a_checkpoint_that_is_no_file_is_named_by_the_loader_not_the_cache(where, crops, cache, capsys):
    from plate_lib.cli import main

    code = main(["predict", str(crops), "--checkpoint", where, "--device", "cpu"])
    err = capsys.readouterr().err
    says = "is a folder; pass a checkpoint file to --checkpoint" if where == "." else "not found; check the path given to --checkpoint"
    assert code == 2 and f"checkpoint {where} {says}" in err


def test_open_reader_exports_once_then_reads_with_the_cached_graph_and_torch_never_uses_it(crops, cache):
    from plate_lib.export import OnnxModel
    from plate_lib.reading import read_plates
    from plate_lib.sources import load_image_file

    images = [load_image_file(str(p)) for p in sorted(crops.glob("*.png"))]
    first, cfg, device = graph.open_reader(SHIPPED, "cpu")
    assert isinstance(first, OnnxModel) and str(device) == "cpu" and len(list(cache.glob("*.onnx"))) == 1
    again, cfg_again, device = graph.open_reader(SHIPPED, "cpu")
    assert type(again) is graph.OnnxReader and device == "cpu" and cfg_again == cfg
    assert read_plates(again, cfg, images) == read_plates(first, cfg, images)
    model, _, _ = graph.open_reader(SHIPPED, "cpu", runtime="torch")
    assert not hasattr(model, "run_images")  # the PyTorch module itself


def test_open_reader_hashes_the_checkpoint_once_on_a_cache_miss(cache, monkeypatch):
    hashed = []
    real_key = graph.graph_key
    monkeypatch.setattr(graph, "graph_key", lambda path: hashed.append(path) or real_key(path))
    graph.open_reader(SHIPPED, "cpu")  # looked up, missed, exported, stored: one hash for both
    assert len(hashed) == 1 and len(list(cache.glob("*.onnx"))) == 1
    graph.open_reader(SHIPPED, "cpu")  # found
    assert len(hashed) == 2


def test_open_reader_does_not_hash_the_checkpoint_when_the_cache_is_off(monkeypatch):
    monkeypatch.setenv("PLATE_LIB_CACHE", "off")
    hashed = []
    monkeypatch.setattr(graph, "graph_key", lambda path: hashed.append(path) or "")
    model, _, _ = graph.open_reader(SHIPPED, "cpu")
    assert hashed == [] and hasattr(model, "run_images")  # read with ONNX Runtime all the same


def test_the_cache_prunes_only_its_own_graphs(tmp_path, cache):
    cache.mkdir()
    mine = [cache / "net.onnx", cache / "net.json"]
    for p in mine:
        p.write_bytes(b"the user's own")
        os.utime(p, (1, 1))  # older than every graph
    cfg = load_config(None)
    for i in range(graph.KEEP_GRAPHS + 1):
        (tmp_path / f"m{i}.pt").write_bytes(f"checkpoint {i}".encode())
        graph.store(tmp_path / f"m{i}.pt", b"graph", cfg)
    assert all(p.exists() for p in mine) and len(list(cache.glob("*-g*.onnx"))) == graph.KEEP_GRAPHS


def test_a_cache_entry_whose_config_is_not_an_object_is_passed_over(cache):
    model, cfg, _ = graph.open_reader(SHIPPED, "cpu")  # exported and stored
    (meta,) = cache.glob("*.json")
    meta.write_text("[]", encoding="utf-8")
    assert graph.cached_reader(SHIPPED) is None  # said in the log; the next start exports again


def test_a_checkpoint_replaced_while_it_is_read_is_not_cached_under_its_old_bytes(tmp_path, cache, monkeypatch):
    live = tmp_path / "live.pt"
    live.write_bytes(SHIPPED.read_bytes())
    real_key = graph.graph_key

    def key_then_replace(path):
        key = real_key(path)
        os.replace(tmp_path / "other.pt", live)  # a run writing best.pt meanwhile: a new file in its place
        return key

    (tmp_path / "other.pt").write_bytes(SHIPPED.read_bytes())
    monkeypatch.setattr(graph, "graph_key", key_then_replace)
    graph.open_reader(live, "cpu")
    assert list(cache.glob("*.onnx")) == []


def test_the_cache_removes_what_a_killed_start_left_half_written_a_day_on(tmp_path, cache):
    cache.mkdir()
    key = "0" * 32 + "-g1"
    old, new = cache / f".{key}.onnx.123.tmp", cache / f".{key}.json.456.tmp"
    for p in (old, new):
        p.write_bytes(b"half")
    os.utime(old, (1, 1))
    (tmp_path / "m.pt").write_bytes(b"checkpoint")
    graph.store(tmp_path / "m.pt", b"graph", load_config(None))
    assert not old.exists() and new.exists()  # one being written now is left alone
