"""Test-time views (``predict.tta``): each view alone, the views voting, and the setting, against one read.

    python benchmarks/tta.py [--checkpoint models/plate_default.pt] [--splits train val] [--out PATH]
                             [--fixed-labels]

Each crop of the real sets present (``real_sets.REAL_SETS``), and where ``make model``'s synthetic zip is here
the first ``--synthetic-n`` plates of its val split, is read as ``read_plates`` reads it (second look included)
in each view of ``preprocess.tta_views`` (as given, padded, cut). Counted against the truth: each view alone,
the three voting by summed confidence on every crop (``vote_all``, ``inference.vote``), the single most
confident view, and ``read_plates(tta=True)`` (``setting``: the views vote only on the crops whose first read
was unsure, as ``predict.rectify_below`` decides for the second look; ``setting_share``: how many). Also the
time of ``read_plates`` with ``tta`` against without (``time_ratio``; 2 threads, the same run). Choose on
``--splits train val`` (the default); the test splits are for the report. ``--fixed-labels`` scores lyl8213
against its corrected labels. Without ``--out`` the JSON goes to ``benchmarks/tta.json`` for the train and val
splits (the committed choice) and to ``benchmarks/tta-<splits>.json`` for others (``real_sets.default_out``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_sets import LABELS, relative, start_study  # noqa: E402


def right(plates: list[str], truth: list[str]) -> int:
    return sum(p == t for p, t in zip(plates, truth, strict=True))


def main() -> None:
    args, model, cfg, sets = start_study(__doc__, "tta")
    from plate_lib.inference import RECTIFY_BELOW, predict_images, read_plates, unsure, vote
    from plate_lib.preprocess import TTA_VIEWS, letterbox, tta_views

    pre = cfg.preprocess
    out: dict = {"checkpoint": relative(args.checkpoint), "splits": args.splits, "labels": LABELS[args.fixed_labels], "views": list(TTA_VIEWS), "sets": {}}
    print(f"splits {'+'.join(args.splits)}: plates read right of n")
    for name, get in sets.items():
        images, truth = get()
        k = len(TTA_VIEWS)
        readings = read_plates(model, cfg, [v for im in images for v in tta_views(im)])
        read_plates(model, cfg, images[:16], tta=True)  # warm-up: the first reads of a set run slower
        t0 = time.perf_counter()
        setting = read_plates(model, cfg, images, tta=True)
        tta_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        read_plates(model, cfg, images)
        once_s = time.perf_counter() - t0
        _, _, weakest, _ = predict_images(model, np.stack([letterbox(im, pre.height, pre.width, pre.grayscale)
                                                        for im in images]), list(cfg.provinces))

        row = {"n": len(truth)}
        for j, view in enumerate(TTA_VIEWS):
            row[view] = right([readings[i * k + j][0] for i in range(len(truth))], truth)
        row["vote_all"] = right([t for t, _ in vote(readings, k)], truth)
        row["most_confident"] = right([max(readings[i * k:(i + 1) * k], key=lambda r: r[1])[0]
                                       for i in range(len(truth))], truth)
        row["setting"] = right([t for t, _ in setting], truth)
        row["setting_share"] = round(float(unsure(weakest, RECTIFY_BELOW).mean()), 3)
        row["time_ratio"] = round(tta_s / once_s, 2)
        out["sets"][name] = row
        print(f"{name:18} " + "  ".join(f"{key} {v}" for key, v in row.items()))
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
