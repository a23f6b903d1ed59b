"""Inference: a checkpoint's model ready to read plates (PyTorch, or ONNX Runtime in its place), and evaluation
of a split. Decoding and reading crops, with no torch, are ``reading``; checkpoints themselves (writing, reading,
checking) are ``checkpoints``; the names of both used here before are importable from here too."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import metrics
from .checkpoints import (  # noqa: F401 (checkpoint code lived here before checkpoints.py: names kept importable)
    CheckpointError,
    check_fits,
    load_weights,
    model_spec,
    read_checkpoint,
    rebuild,
    save_checkpoint,
)
from .colours import colour_lengths
from .config import Config, ConfigError
from .dataset import SplitData
from .models import fuse_batchnorm
from .reading import (  # noqa: F401 (torch-free reading lived here before reading.py: names kept importable)
    EVAL_BATCH,
    RECTIFY_BELOW,
    decode_logits,
    decode_readings,
    look_again,
    other_views,
    predict_images,
    read_crops,
    read_plates,
    second_look,
    unsure,
    vote,
    weakest_character,
)
from .sources import Record, Source

log = logging.getLogger(__name__)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if not (name in ("cpu", "cuda", "mps") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ConfigError(f"device {name!r} (run.device or --device) is not one of auto, cpu, cuda, cuda:N, mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} (run.device or --device) asks for CUDA but no CUDA device answers; "
                          "use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' (run.device or --device) asks for an Apple GPU but none answers; use auto or cpu")
    return torch.device(name)


def pick_runtime(name: str, device: str | torch.device) -> str:
    """``predict.runtime`` → what runs the network: ``auto`` is ``onnx`` (``export.OnnxModel``: the same readings,
    faster on a CPU) on the CPU where ONNX Runtime and the ``onnx`` package (the export) are installed, else
    ``torch``; ``torch`` and ``onnx`` as named."""
    if name != "auto":
        return name
    if torch.device(device).type != "cpu":
        return "torch"
    return "torch" if missing_onnx() else "onnx"


ONNX_PACKAGES = ("onnxruntime", "onnx")  # what reading with ONNX Runtime needs: the runtime, and onnx for the export


def missing_onnx() -> list[str]:
    """The packages of ``ONNX_PACKAGES`` not installed."""
    return [m for m in ONNX_PACKAGES if importlib.util.find_spec(m) is None]


def load_reader(path: str | Path, device: str | torch.device = "cpu",
                runtime: str = "auto") -> tuple[torch.nn.Module, Config]:
    """``load_model``, run by what ``predict.runtime`` ``runtime`` picks on ``device`` (``pick_runtime``): the
    PyTorch model, or ``export.OnnxModel`` in its place (ONNX Runtime; the CPU only: elsewhere an error)."""
    device = torch.device(device)
    runtime = pick_runtime(runtime, device)
    log.info("runtime: %s on %s (predict.runtime)", runtime, device)
    if runtime == "onnx" and device.type != "cpu":
        raise ConfigError(f"predict.runtime onnx runs on the CPU, not on device {device}: pass --device cpu, "
                          "or set predict.runtime=torch")
    if runtime == "onnx" and (missing := missing_onnx()):
        raise ConfigError(f"predict.runtime onnx needs {' and '.join(missing)}, not installed: pip install "
                          "'plate_lib[export]' (onnx and onnxruntime), or set predict.runtime=torch")
    model, cfg = load_model(path, device)
    if runtime == "onnx":
        from .export import OnnxModel  # (export imports this module)

        model = OnnxModel(model, cfg.preprocess)
    return model, cfg


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """Rebuild the model from the checkpoint alone (no cfg.yaml needed); returns it in eval mode."""
    model, cfg = rebuild(read_checkpoint(path), path)
    return prepare_for_inference(model, device), cfg


def prepare_for_inference(model: torch.nn.Module, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Eval mode, batch norm folded into the convolutions, channels_last on ``device`` (in place).

    channels_last: about 2x faster convolutions on CPU and GPU; inputs permuted from [N, H, W, C] arrays
    (``predict_images``) already have that layout.
    """
    return fuse_batchnorm(model).to(device, memory_format=torch.channels_last)


# --- prediction -----------------------------------------------------------------------------------------


@torch.inference_mode()
def predict_tensor(model: torch.nn.Module, x: torch.Tensor, provinces: list[str],
                   lengths: np.ndarray | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Float batch [B, C, H, W] → plates, confidences, weakest characters and province log-probabilities
    (``decode_readings``, with the crops' colour ``lengths`` where given)."""
    return decode_readings(*model(x), provinces, lengths)



def evaluate(model: torch.nn.Module, data: SplitData, provinces: list[str], batch_size: int = EVAL_BATCH,
             device: str | torch.device = "cpu", source: Source | None = None,
             rectify_below: float = 0.0, tta: bool = False,
             by_colour: bool = False) -> tuple[dict[str, float], pd.DataFrame]:
    """Headline metrics and one row per plate (name, true, pred, confidence, errors, edit distance, meta).

    With the ``source`` the split was loaded from and ``rectify_below`` > 0, plates are read as ``read_plates``
    reads them (``look_again``: the second, rectified look at unsure crops and, with ``tta``, their test-time
    views; those crops decoded again from the source); with the ``source`` and ``by_colour``, decoded by each
    crop's colour (``predict.by_colour``: every crop loaded again from the source for its hue); by default, the
    network alone on the cached crops.
    """
    def crop(i: int) -> np.ndarray:
        return source.load(Record(data.names[i], data.texts[i]))

    lengths = None
    if source is not None and by_colour:  # a batch of crops in memory at a time
        lengths = np.zeros(len(data), np.int64)
        for start in range(0, len(data), batch_size):
            stop = min(start + batch_size, len(data))
            lengths[start:stop] = colour_lengths([crop(i) for i in range(start, stop)])
    preds, conf, weakest, logp = predict_images(model, data.images, provinces, batch_size, device, lengths)
    conf = np.array(conf, np.float32)
    if source is not None and rectify_below > 0:
        readings = look_again(model, provinces, data.images.shape[1:], crop, preds, conf, weakest,
                              device, rectify_below, batch_size, tta, lengths, logp)
        preds, conf = [t for t, _ in readings], np.array([c for _, c in readings], np.float32)
    summary = metrics.summarize(preds, data.texts)
    rows = pd.DataFrame({"name": data.names, "true": data.texts, "pred": preds, "confidence": conf})
    rows["correct"] = rows["pred"] == rows["true"]
    rows["char_errors"] = [metrics.char_errors(p, t) for p, t in zip(preds, data.texts, strict=True)]
    rows["edit_distance"] = [metrics.edit_distance(p, t) for p, t in zip(preds, data.texts, strict=True)]
    if data.meta and any(data.meta):
        rows = pd.concat([rows, pd.DataFrame(data.meta)], axis=1)
    return summary, rows
