"""Inference: checkpoints in and out, batched prediction with confidences, evaluation of a split."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import metrics
from .config import Config, from_dict
from .dataset import SplitData, letterbox
from .models import ModelSpec, build_model
from .plates import BLANK, SYMBOLS, ctc_greedy_decode


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated or does not fit."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"run.device is {name!r} but no CUDA device answers; use auto or cpu")
    return torch.device(name)


def model_spec(cfg: Config) -> ModelSpec:
    return ModelSpec(
        in_channels=cfg.preprocess.channels, height=cfg.preprocess.height, width=cfg.preprocess.width,
        n_provinces=len(cfg.provinces), n_ctc_classes=len(SYMBOLS) + 1, hidden=cfg.model.hidden,
        ctc_steps=cfg.model.ctc_steps, dropout=cfg.model.dropout, norm=cfg.model.norm,
    )


# --- checkpoints ----------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, model: torch.nn.Module, cfg: Config, **extra: Any) -> None:
    """Write atomically (temporary file, then rename): the weights, the config and the alphabet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": "plate_lib/1",
        "model_name": cfg.model.name,
        "spec": asdict(model_spec(cfg)),
        "config": cfg.to_dict(),
        "alphabet": {"provinces": list(cfg.provinces), "symbols": SYMBOLS, "blank": BLANK},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; train one with `plate train` or pass --checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a plate_lib checkpoint): {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "plate_lib/1":
        raise CheckpointError(f"{path} is not a plate_lib checkpoint (no 'format: plate_lib/1' entry)")
    if ckpt["alphabet"]["symbols"] != SYMBOLS:
        raise CheckpointError(f"{path} was trained with another symbol alphabet ({''.join(ckpt['alphabet']['symbols'])})")
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """Rebuild the model from the checkpoint alone (no cfg.yaml needed); returns it in eval mode."""
    ckpt = read_checkpoint(path)
    cfg = from_dict(ckpt["config"], origin=f"{path} (stored config)")
    model = build_model(ckpt["model_name"], ModelSpec(**ckpt["spec"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg


# --- prediction -----------------------------------------------------------------------------------------


def decode_logits(prov_logits: torch.Tensor, ctc_logits: torch.Tensor, provinces: list[str]) -> tuple[list[str], torch.Tensor]:
    """Model outputs → plates and confidences (province prob × best-path CTC prob)."""
    prov_p, prov_i = prov_logits.float().softmax(-1).max(-1)
    ctc_lp, ctc_i = ctc_logits.float().log_softmax(-1).max(-1)  # [B, T]
    conf = prov_p * ctc_lp.sum(-1).exp()
    texts = [provinces[int(p)] + ctc_greedy_decode(row.tolist()) for p, row in zip(prov_i, ctc_i, strict=True)]
    return texts, conf.cpu()


@torch.no_grad()
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


def read_plates(model: torch.nn.Module, cfg: Config, bgr_images: list[np.ndarray], device="cpu") -> list[tuple[str, float]]:
    """Raw BGR crops of any size → (plate, confidence) each."""
    pre = cfg.preprocess
    batch = np.stack([letterbox(im, pre.height, pre.width, pre.grayscale) for im in bgr_images])
    texts, conf = predict_images(model, batch, list(cfg.provinces), device=device)
    return list(zip(texts, conf.tolist(), strict=True))


def evaluate(model: torch.nn.Module, data: SplitData, provinces: list[str], batch_size: int = 256,
             device: str | torch.device = "cpu") -> tuple[dict[str, float], pd.DataFrame]:
    """Headline metrics and one row per plate (name, true, pred, confidence, errors, edit distance, meta)."""
    preds, conf = predict_images(model, data.images, provinces, batch_size, device)
    summary = metrics.summarize(preds, data.texts)
    rows = pd.DataFrame({"name": data.names, "true": data.texts, "pred": preds, "confidence": conf})
    rows["correct"] = rows["pred"] == rows["true"]
    rows["char_errors"] = [metrics.char_errors(p, t) for p, t in zip(preds, data.texts, strict=True)]
    rows["edit_distance"] = [metrics.edit_distance(p, t) for p, t in zip(preds, data.texts, strict=True)]
    if data.meta and any(data.meta):
        rows = pd.concat([rows, pd.DataFrame(data.meta)], axis=1)
    return summary, rows
