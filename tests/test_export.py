"""Export: the model as an ONNX graph, and ONNX Runtime reading in its place (``predict.runtime: onnx``)."""

import sys

import numpy as np
import pytest
import torch
from conftest import SHIPPED

from plate_lib.config import ConfigError
from plate_lib.export import OnnxModel
from plate_lib.inference import load_model, pick_runtime, read_plates
from plate_lib.synth import render_plate


@pytest.fixture(scope="module")
def shipped():
    pytest.importorskip("onnxruntime")
    model, cfg = load_model(SHIPPED)
    return model, OnnxModel(model, cfg.preprocess), cfg


def test_onnx_runtime_gives_the_pytorch_logits_at_any_batch_size(shipped):
    model, onnx, cfg = shipped
    pre = cfg.preprocess
    for n in (1, 3, 17):
        x = torch.rand(n, pre.channels, pre.height, pre.width)
        with torch.inference_mode():
            for ours, theirs in zip(onnx(x), model(x), strict=True):
                assert ours.shape == theirs.shape
                torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_onnx_runtime_fed_uint8_crops_directly_gives_the_pytorch_logits(channels):
    pytest.importorskip("onnxruntime")
    from plate_lib.config import PreprocessConfig
    from plate_lib.inference import prepare_for_inference
    from plate_lib.models import ModelSpec, build_model

    spec = ModelSpec(in_channels=channels, height=48, width=144, n_provinces=31, n_ctc_classes=37)
    model = prepare_for_inference(build_model("small_crnn_lite", spec).eval())
    onnx = OnnxModel(model, PreprocessConfig(height=48, width=144, grayscale=channels == 1))
    images = np.random.default_rng(0).integers(0, 256, (3, 48, 144, channels), np.uint8)  # letterboxed, [N, H, W, C]
    with torch.inference_mode():
        expected = model(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255))
    for ours, theirs in zip(onnx.run_images(images), expected, strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_onnx_runtime_reads_crops_as_pytorch_does_second_look_included(shipped):
    model, onnx, cfg = shipped
    rng = np.random.default_rng(3)
    crops = [render_plate(text, rng) for text in ["苏E1W8MQ", "皖A12345", "粤B7K2D9", "京AD12345", "鲁Q5G7H2"]]
    crops.append(np.ascontiguousarray(crops[0][:, ::-1]))  # a mirrored plate: read with low confidence
    torch_reads = read_plates(model, cfg, crops, rectify_below=1.0)
    onnx_reads = read_plates(onnx, cfg, crops, rectify_below=1.0)
    assert [t for t, _ in onnx_reads] == [t for t, _ in torch_reads]
    assert [c for _, c in onnx_reads] == pytest.approx([c for _, c in torch_reads], abs=2e-4)


def test_onnx_runtime_threads_follow_torch_threads(shipped):
    _, onnx, cfg = shipped
    before = torch.get_num_threads()
    x = torch.rand(1, cfg.preprocess.channels, cfg.preprocess.height, cfg.preprocess.width)
    try:
        torch.set_num_threads(1)
        onnx(x)
        assert 1 in onnx._sessions
    finally:
        torch.set_num_threads(before)


def test_a_batch_spread_over_threads_in_parts_reads_as_one_session_does_in_order(shipped, monkeypatch):
    _, onnx, cfg = shipped
    pre = cfg.preprocess
    images = np.random.default_rng(5).integers(0, 256, (40, pre.height, pre.width, pre.channels), np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(onnx, "part_plates", 0)  # the whole batch to one two-thread session
        whole = onnx.run_images(images)
        monkeypatch.setattr(onnx, "part_plates", 16)
        runs, run = [], onnx.run
        monkeypatch.setattr(onnx, "run", lambda ims: runs.append((len(ims), onnx.threads())) or run(ims))
        for n in (2, 17, 40):
            runs.clear()
            for ours, theirs in zip(onnx.run_images(images[:n]), whole, strict=True):
                np.testing.assert_allclose(ours, theirs[:n], rtol=1e-5, atol=1e-5)
            assert sum(size for size, _ in runs) == n and len(runs) % 2 == 0  # parts for both threads
            assert all(size <= 16 and threads == 1 for size, threads in runs)
        runs.clear()
        onnx.run_images(images[:1])
        assert runs == [(1, 2)]  # one plate: the two-thread session, for its latency
        torch.set_num_threads(3)
        runs.clear()
        onnx.run_images(images[:2])
        assert runs == [(1, 1), (1, 1)]  # more threads than plates: no empty part
    finally:
        torch.set_num_threads(before)


def test_raw_crops_are_read_in_parts_end_to_end_as_one_session_reads_them(shipped, monkeypatch):
    """read_plates on ONNX Runtime: each part letterboxed, read and looked at again on one worker, whose network
    calls are not split again; the readings those of the whole batch, in order."""
    from plate_lib.synth import iter_plates

    _, onnx, cfg = shipped
    crops = [image for image, _ in iter_plates(24, seed=3, split="test")]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(onnx, "part_plates", 0)
        whole = read_plates(onnx, cfg, crops, rectify_below=1.0)  # every crop looked at twice
        monkeypatch.setattr(onnx, "part_plates", 8)
        runs, run = [], onnx.run
        monkeypatch.setattr(onnx, "run", lambda ims: runs.append((len(ims), onnx.threads())) or run(ims))
        parts = read_plates(onnx, cfg, crops, rectify_below=1.0)
    finally:
        torch.set_num_threads(before)
    assert [t for t, _ in parts] == [t for t, _ in whole]
    np.testing.assert_allclose([c for _, c in parts], [c for _, c in whole], rtol=1e-4)
    assert {threads for _, threads in runs} == {1} and all(size <= 8 for size, _ in runs)
    assert sum(size for size, _ in runs) >= len(crops)  # first looks, then the second looks found
    assert read_plates(onnx, cfg, []) == []


def test_without_onnx_runtime_the_error_names_the_setting_and_the_fix(monkeypatch):
    model, cfg = load_model(SHIPPED)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"predict.runtime onnx needs ONNX Runtime: pip install 'plate_lib\[export\]'"):
        OnnxModel(model, cfg.preprocess)


def test_runtime_auto_is_onnx_runtime_on_the_cpu_where_it_is_installed_else_pytorch(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_runtime("torch", cpu) == "torch" and pick_runtime("onnx", cpu) == "onnx"  # as named
    assert pick_runtime("auto", cuda) == "torch"  # ONNX Runtime here runs on the CPU only
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
        assert pick_runtime("auto", cpu) == "torch"
    pytest.importorskip("onnxruntime")
    assert pick_runtime("auto", cpu) == "onnx"


def test_reading_with_onnx_runtime_needs_the_onnx_package_too(monkeypatch):
    import importlib.util

    from plate_lib import inference

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert inference.pick_runtime("auto", "cpu") == "torch"  # it cannot export the graph: PyTorch reads
    with pytest.raises(ConfigError, match=r"predict.runtime onnx needs onnx, not installed: pip install 'plate_lib\[export\]'"):
        inference.load_reader(SHIPPED, "cpu", "onnx")
