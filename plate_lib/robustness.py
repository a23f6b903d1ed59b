"""Robustness: word accuracy against one degradation at a time, at several strengths, to see where a model breaks.

``curves`` reads a set of real crops clean, then under each of ``degrade.ROBUSTNESS`` (crop height, JPEG
quality, rotation, tilt, exposure, glare, motion blur, defocus) and under changed crop margins, and returns one
row per (set, degradation, strength). The margin and the rotation take the photo around the plate where the
source has it (CCPD2019 photos: the annotated corners or box moved outwards or inwards; the photo turned about
the plate and cut at the turned plate's bounding box), and use the crop's own edge pixels elsewhere.
``benchmarks/robustness.py`` runs it for the shipped model; ``03_error_analysis`` for the report's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from . import degrade
from .config import Config
from .images import decode_photo
from .inference import read_plates
from .sources import CcpdPhotos, Record, Source, ccpd_bbox, load_records, parse_ccpd_name, rectify

MARGINS = [-0.08, -0.04, 0.1, 0.2, 0.3, 0.5, 0.75]
"""Crop margins per side, as a share of the plate's width and height: negative cuts into the plate."""


def margin_crop(source: Source, record: Record, share: float) -> np.ndarray:
    """The crop of ``record`` with ``share`` of the plate's size added on every side (cut away when negative)."""
    if isinstance(source, CcpdPhotos):
        photo, scale = decode_photo(source._read(record.name), f"{source.path}:{record.name}")
        if source.crop == "corners":  # move each corner outwards along the plate's own width and height
            br, bl, tl, tr = parse_ccpd_name(record.name)[1] * np.float32(scale)
            u, v = ((tr - tl) + (br - bl)) / 2, ((bl - tl) + (br - tr)) / 2
            grown = np.float32([br + share * (u + v), bl + share * (v - u), tl - share * (u + v), tr + share * (u - v)])
            return source.finish(rectify(photo, grown, round(70 * (1 + 2 * share)), round(220 * (1 + 2 * share))))
        x1, y1, x2, y2 = (v * s for v, s in zip(ccpd_bbox(record.name), scale * 2, strict=True))
        dx, dy = share * (x2 - x1), share * (y2 - y1)
        h, w = photo.shape[:2]
        box = [max(0, round(x1 - dx)), max(0, round(y1 - dy)), min(w, round(x2 + dx)), min(h, round(y2 + dy))]
        return source.finish(np.ascontiguousarray(photo[box[1]:box[3], box[0]:box[2]]))
    crop = source.load(record)
    h, w = crop.shape[:2]
    dx, dy = round(abs(share) * w), round(abs(share) * h)
    if share < 0:
        return np.ascontiguousarray(crop[dy:h - dy, dx:w - dx])
    return cv2.copyMakeBorder(crop, dy, dy, dx, dx, cv2.BORDER_REPLICATE)


def rotated_crop(source: Source, record: Record, degrees: float) -> np.ndarray:
    """The crop of ``record``'s plate turned ``degrees`` in the image plane (counter-clockwise, as
    ``degrade.rotate``). A CCPD2019 photo is turned about the plate's centre and cut at the bounding box of the
    turned corners, as CCPD2019-dl1 cuts a turned plate: the car around it fills the corners. A source without
    the photo turns its crop with the edge pixels repeated into the new corners (``degrade.rotate``)."""
    if not isinstance(source, CcpdPhotos):
        return degrade.rotate(source.load(record), degrees)
    photo, scale = decode_photo(source._read(record.name), f"{source.path}:{record.name}")
    corners = parse_ccpd_name(record.name)[1] * np.float32(scale)
    cx, cy = corners.mean(0)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), degrees, 1.0)
    h, w = photo.shape[:2]
    turned = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = corners @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
    x1, y1 = np.maximum(np.floor(pts.min(0)).astype(int), 0)
    x2, y2 = np.minimum(np.ceil(pts.max(0)).astype(int), [w, h])
    return source.finish(np.ascontiguousarray(turned[y1:y2, x1:x2]))


def _accuracy(model: torch.nn.Module, cfg: Config, crops: Sequence[np.ndarray], texts: Sequence[str]) -> float:
    """Word accuracy of ``crops`` read as ``cfg`` says to read (``predict.rectify_below``, ``predict.tta``,
    ``predict.by_colour``, the batch)."""
    preds = [p for p, _ in read_plates(model, cfg, list(crops), rectify_below=cfg.predict.rectify_below,
                                       tta=cfg.predict.tta, batch_size=cfg.training.eval_batch_size,
                                       by_colour=cfg.predict.by_colour)]
    return float(np.mean([p == t for p, t in zip(preds, texts, strict=True)]))


def curves(model: torch.nn.Module, cfg: Config, sets: dict[str, tuple[Source, list[Record]]],
           degradations: dict = degrade.ROBUSTNESS, margins: Sequence[float] = MARGINS) -> pd.DataFrame:
    """``set, degradation, strength, word_acc, n`` for each set (a source and the records to read), clean
    (degradation ``none``) and under each degradation at each strength. Signed degradations (rotation, tilt)
    turn half the plates one way and half the other."""
    rows = []
    for name, (source, records) in sets.items():
        records, crops = load_records(source, records, cfg.data.skip_bad)  # as evaluation leaves bad files out
        texts = [r.text for r in records]
        n = len(texts)
        rows.append((name, "none", 0.0, _accuracy(model, cfg, crops, texts), n))
        for kind, (fn, strengths, _) in degradations.items():
            signed = kind in ("rotation", "tilt")
            for s in strengths:
                if kind == "rotation":  # the photo around the plate where the source has it
                    changed = [rotated_crop(source, r, s * (-1 if i % 2 else 1)) for i, r in enumerate(records)]
                else:
                    changed = [fn(c, s * (-1 if signed and i % 2 else 1)) for i, c in enumerate(crops)]
                rows.append((name, kind, float(s), _accuracy(model, cfg, changed, texts), n))
        for m in margins:
            rows.append((name, "margin", m, _accuracy(model, cfg, [margin_crop(source, r, m) for r in records], texts), n))
    return pd.DataFrame(rows, columns=["set", "degradation", "strength", "word_acc", "n"])


def compare(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Models' ``curves`` side by side: ``table`` is their rows stacked with a ``model`` column. One row per
    model and set: the clean word accuracy, the mean over the degraded settings, and against ``reference``'s
    curves (the same settings), the degraded plates read more (negative: fewer) and the settings read better
    and worse. The figures to judge an augmentation by: clean level, degraded up."""
    key = ["set", "degradation", "strength"]
    ref = table[table.model == reference].set_index(key)
    rows = []
    for (model, name), part in table.groupby(["model", "set"], sort=False):
        part = part.set_index(key)
        clean, degraded = part.xs("none", level="degradation"), part.drop("none", level="degradation")
        base = ref.reindex(degraded.index)
        gain = (degraded.word_acc - base.word_acc) * degraded.n
        rows.append({"model": model, "set": name, "n": int(clean.n.iloc[0]), "clean": float(clean.word_acc.iloc[0]),
                     "degraded_mean": float(degraded.word_acc.mean()), "plates_vs_reference": int(round(gain.sum())),
                     "better": int((gain > 0.5).sum()), "worse": int((gain < -0.5).sum())})
    return pd.DataFrame(rows)


LABELS = {**{k: label for k, (_, _, label) in degrade.ROBUSTNESS.items()},
          "margin": "crop margin per side, share of the plate (negative: cut)"}
"""The x-axis label of each degradation."""


def eval_set_curves(cfg: Config, checkpoint: str | Path, split: str = "test") -> pd.DataFrame:
    """``curves`` of a checkpoint on ``split`` of every ``data.eval_sets`` entry (the report's section), on the CPU,
    by what ``predict.runtime`` picks there."""
    from .analysis import set_labels
    from .dataset import open_cfg_source
    from .inference import load_reader

    model, _ = load_reader(checkpoint, "cpu", cfg.predict.runtime)
    sets = {}
    label = set_labels(["test", *cfg.data.eval_sets])  # as the report's other tables name them
    for path in cfg.data.eval_sets:
        source = open_cfg_source(cfg, path)
        sets[label[path]] = (source, [r for r in source.records(split) if not r.error])
    return curves(model, cfg, sets) if sets else pd.DataFrame(columns=["set", "degradation", "strength", "word_acc", "n"])
