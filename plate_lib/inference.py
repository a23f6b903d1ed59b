"""Inference: a checkpoint's model ready to read plates, batched prediction with confidences, evaluation of a
split. Checkpoints themselves (writing, reading, checking) are ``checkpoints``; its names used here before are
importable from here too."""

from __future__ import annotations

from collections.abc import Callable
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
from .config import Config, ConfigError, PredictConfig
from .dataset import SplitData
from .models import fuse_batchnorm
from .plates import ctc_beam_search, ctc_greedy_decode, is_plate
from .preprocess import letterbox
from .sources import Record, Source


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


def decode_logits(prov_logits: torch.Tensor, ctc_logits: torch.Tensor, provinces: list[str]) -> tuple[list[str], torch.Tensor]:
    """Model outputs → plates and confidences (province prob × CTC prob).

    Best-path decoding first; where that is not a plate (9 characters from a doubled 8, a digit as city
    letter…), the most probable plate among the CTC beam search's readings (``plates.ctc_beam_search``),
    with its sequence probability. A plate is never traded for a non-plate, so word accuracy can only rise.
    """
    prov_p, prov_i = prov_logits.float().softmax(-1).max(-1)
    log_probs = ctc_logits.float().log_softmax(-1)
    ctc_lp, ctc_i = log_probs.max(-1)  # [B, T]
    conf = prov_p * ctc_lp.sum(-1).exp()
    texts = [provinces[int(p)] + ctc_greedy_decode(row.tolist()) for p, row in zip(prov_i, ctc_i, strict=True)]
    for i, text in enumerate(texts):
        if not is_plate(text, provinces):
            readings = ctc_beam_search(log_probs[i].cpu().numpy())
            found = next(((t, lp) for t, lp in readings if is_plate(text[0] + t, provinces)), None)
            if found:
                texts[i], conf[i] = text[0] + found[0], prov_p[i] * float(np.exp(found[1]))
    return texts, conf.cpu()


@torch.inference_mode()
def predict_tensor(model: torch.nn.Module, x: torch.Tensor, provinces: list[str]) -> tuple[list[str], torch.Tensor]:
    """Float batch [B, C, H, W] → plates and confidences."""
    return decode_logits(*model(x), provinces)


def predict_images(model: torch.nn.Module, images: np.ndarray, provinces: list[str], batch_size: int = 256,
                   device: str | torch.device = "cpu") -> tuple[list[str], np.ndarray]:
    """uint8 [N, H, W, C] (already letterboxed) → plates and confidences, in batches."""
    model.eval()
    texts, confs = [], []
    for i in range(0, len(images), batch_size):
        chunk = torch.from_numpy(np.array(images[i:i + batch_size])).to(device)  # a copy: memmaps are read-only
        x = chunk.permute(0, 3, 1, 2).float().div_(255)
        t, c = predict_tensor(model, x, provinces)
        texts += t
        confs.append(c.numpy())
    return texts, np.concatenate(confs) if confs else np.zeros(0, np.float32)


RECTIFY_BELOW: float = PredictConfig.model_fields["rectify_below"].default  # predict.rectify_below's default


def read_plates(model: torch.nn.Module, cfg: Config, bgr_images: list[np.ndarray], device="cpu",
                rectify_below: float = RECTIFY_BELOW) -> list[tuple[str, float]]:
    """Raw BGR crops of any size → (plate, confidence) each.

    Each crop read with a confidence below ``rectify_below`` is read again warped level where
    ``rectify.plate_quad`` finds the plate, and the more confident reading is kept: bounding-box crops of tilted
    plates gain most (README, "Measured results"). 0 reads every crop once, as given; 1 looks twice at all.
    ``model`` may be ``export.OnnxModel`` (ONNX Runtime in its place).
    """
    provinces, pre = list(cfg.provinces), cfg.preprocess

    def read_batch(batch: np.ndarray) -> tuple[list[str], np.ndarray]:
        return predict_images(model, batch, provinces, device=device)

    batch = np.stack([letterbox(im, pre.height, pre.width, pre.grayscale) for im in bgr_images])
    texts, conf = read_batch(batch)
    texts, conf = list(texts), np.array(conf, np.float32)
    second_look(read_batch, batch.shape[1:], bgr_images.__getitem__, texts, conf, rectify_below)
    return list(zip(texts, conf.tolist(), strict=True))


def second_look(read_batch: Callable[[np.ndarray], tuple[list[str], np.ndarray]], input_shape: tuple[int, ...],
                crop: Callable[[int], np.ndarray], texts: list[str], conf: np.ndarray, rectify_below: float,
                batch_size: int = 256) -> None:
    """Read again, warped level (``rectify.rectify``), each plate ``i`` whose confidence is below
    ``rectify_below`` and whose raw crop (``crop(i)``, BGR) shows the plate; where that reading is more confident,
    it replaces ``texts[i]`` and ``conf[i]`` in place. ``input_shape``: the model's (H, W, C)."""
    from .rectify import rectify

    height, width, channels = input_shape
    unsure = np.flatnonzero(conf < rectify_below)
    for start in range(0, len(unsure), batch_size):
        warped = [(i, w) for i in unsure[start:start + batch_size] if (w := rectify(crop(int(i)))) is not None]
        if not warped:
            continue
        texts_w, conf_w = read_batch(np.stack([letterbox(w, height, width, channels == 1) for _, w in warped]))
        for (i, _), t, c in zip(warped, texts_w, np.asarray(conf_w, np.float32), strict=True):
            if c > conf[i]:
                texts[i], conf[i] = t, c


def evaluate(model: torch.nn.Module, data: SplitData, provinces: list[str], batch_size: int = 256,
             device: str | torch.device = "cpu", source: Source | None = None,
             rectify_below: float = 0.0) -> tuple[dict[str, float], pd.DataFrame]:
    """Headline metrics and one row per plate (name, true, pred, confidence, errors, edit distance, meta).

    With the ``source`` the split was loaded from and ``rectify_below`` > 0, plates are read as ``read_plates``
    reads them (the second, rectified look at unsure crops, ``second_look``); by default, the network alone on
    the cached crops.
    """
    preds, conf = predict_images(model, data.images, provinces, batch_size, device)
    preds, conf = list(preds), np.array(conf, np.float32)
    if source is not None and rectify_below > 0:
        def read(batch: np.ndarray) -> tuple[list[str], np.ndarray]:
            return predict_images(model, batch, provinces, batch_size, device)

        second_look(read, data.images.shape[1:], lambda i: source.load(Record(data.names[i], data.texts[i])),
                    preds, conf, rectify_below, batch_size)
    summary = metrics.summarize(preds, data.texts)
    rows = pd.DataFrame({"name": data.names, "true": data.texts, "pred": preds, "confidence": conf})
    rows["correct"] = rows["pred"] == rows["true"]
    rows["char_errors"] = [metrics.char_errors(p, t) for p, t in zip(preds, data.texts, strict=True)]
    rows["edit_distance"] = [metrics.edit_distance(p, t) for p, t in zip(preds, data.texts, strict=True)]
    if data.meta and any(data.meta):
        rows = pd.concat([rows, pd.DataFrame(data.meta)], axis=1)
    return summary, rows
