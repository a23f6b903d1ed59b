"""When to look twice: the rectified second look's trigger, measured as plates read against crops re-read.

    python benchmarks/second_look.py [--checkpoint models/plate_default.pt] [--splits train val]
                                     [--out PATH] [--fixed-labels]

Each crop of the real sets present (``real_sets.REAL_SETS``) is read once as given and once rectified
(``rectify.model_inputs``: the most confident of its warps), both kept. Then, for each trigger and threshold, the reading ``read_plates`` would give
(the rectified one where the crop is re-read, rectification finds the plate and it is more confident) is
counted against the truth, with the share of crops re-read: the second look's cost in time. Triggers:
``confidence``, the plate's confidence (province prob × the CTC best path's probability over all steps: what
``predict.rectify_below`` compared before), and ``weakest``, the probability of the least sure character
(``inference.weakest_character``: what it compares now). Choose on ``--splits train val`` (the default);
the test splits are for the report only. Where ``make model``'s synthetic zip is here (``--synthetic``), the
first ``--synthetic-n`` plates of its val split are read too (``synthetic_val``): harder plates, many more of
them, and never a test split whatever ``--splits`` says. ``--fixed-labels`` scores lyl8213 against its corrected
labels (``real_sets.LABEL_FIXES``), as the shipped model was trained. Without ``--out`` the JSON goes to
``benchmarks/second_look.json`` for the train and val splits (the committed choice) and to
``benchmarks/second_look-<splits>.json`` for others (``real_sets.default_out``), so a test-split run keeps it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_sets import LABELS, relative, start_study  # noqa: E402

THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)


def both_readings(model, cfg, images: list[np.ndarray]) -> dict[str, np.ndarray | list]:
    """First and rectified readings of every crop: texts, confidences, weakest characters, rectified or not (the
    most confident reading of the crop's warps, as ``reading.second_look`` keeps it: here against no reading)."""
    from plate_lib.inference import predict_images
    from plate_lib.preprocess import letterbox
    from plate_lib.reading import second_look

    pre, provinces = cfg.preprocess, list(cfg.provinces)
    first = np.stack([letterbox(im, pre.height, pre.width, pre.grayscale) for im in images])
    t1, c1, w1, _ = predict_images(model, first, provinces)
    looked = second_look(lambda batch, want: predict_images(model, batch, provinces, lengths=want),
                         (pre.height, pre.width, pre.channels),
                         images, [("", -1.0)] * len(images))
    t2, c2 = [t for t, _ in looked], np.array([c for _, c in looked], np.float32)
    return {"t1": t1, "c1": c1, "w1": w1, "t2": t2, "c2": c2, "found": c2 >= 0}


def outcome(r: dict, truth: list[str], trigger: str, threshold: float) -> tuple[int, float]:
    """(plates read right, share of crops re-read) with this trigger and threshold (``inference.unsure``'s rule)."""
    from plate_lib.inference import unsure

    again = unsure(r["c1" if trigger == "confidence" else "w1"], threshold)
    take = again & r["found"] & (r["c2"] > r["c1"])
    preds = [b if t else a for a, b, t in zip(r["t1"], r["t2"], take, strict=True)]
    return sum(p == t for p, t in zip(preds, truth, strict=True)), float(again.mean())


def main() -> None:
    args, model, cfg, sets = start_study(__doc__, "second_look")
    readings = {}
    for name, get in sets.items():
        images, truth = get()
        readings[name] = (both_readings(model, cfg, images), truth)
    rows = []
    print(f"splits {'+'.join(args.splits)}: plates read right / n, share re-read")
    for trigger in ("confidence", "weakest"):
        for threshold in THRESHOLDS:
            row = {"trigger": trigger, "threshold": threshold, "sets": {}}
            for name, (r, truth) in readings.items():
                right, share = outcome(r, truth, trigger, threshold)
                row["sets"][name] = {"right": right, "n": len(truth), "reread": round(share, 3)}
            row["right"] = sum(s["right"] for s in row["sets"].values())
            rows.append(row)
            print(f"{trigger:>10} < {threshold:<4}  total {row['right']:>5}  " + "  ".join(
                f"{n} {s['right']}/{s['n']} ({s['reread']:.2f})" for n, s in row["sets"].items()))
    out = {"checkpoint": relative(args.checkpoint), "splits": args.splits, "labels": LABELS[args.fixed_labels],
           "synthetic_val": args.synthetic_n if "synthetic_val" in sets else 0, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
