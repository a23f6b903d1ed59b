"""Where to put ``predict.min_confidence`` for a checkpoint: accuracy and coverage against the threshold on the
real sets, and the threshold this proposes.

    python benchmarks/confidence.py [CHECKPOINT] [--splits val] [--max-wrong 0.05] [--out PATH]
                                    [--fixed-labels]

Reads the real sets present (``real_sets.py``: the CCPD sample photos cut from their corners, as ``plate predict``
cuts them, and the lyl8213 street crops; ``--splits``, default their ``val`` splits: the shipped model was not
trained on them, though the CCPD sample's picked its best epoch) with CHECKPOINT (default
``models/plate_default.pt``). For each threshold t from 0 to 0.99 in steps of 0.01, a reading with confidence >= t
is ``ok``, the rest ``low_confidence``; per set and pooled it counts the coverage (share ``ok``), the wrong readings
among the ``ok`` rows, and the shares of the wrong and of the right readings that t flags.

Proposed threshold: the lowest t at which at most ``--max-wrong`` of the pooled ``ok`` rows are wrong readings
(default 5 %), and above every reading of noise (uniform random pixels at 136×36 and 220×70: readings of nothing),
so that a model right on nearly every real plate still flags noise. ``--fixed-labels`` scores lyl8213 against
its corrected labels (``real_sets.LABEL_FIXES``), as the shipped model was trained and chosen on.
Prints a table every 0.05 and writes JSON (without ``--out``: ``benchmarks/confidence.json`` for the val splits,
the committed choice, and ``benchmarks/confidence-<splits>.json`` for others: ``real_sets.default_out``); copy the
proposed value into cfg.yaml (``predict.min_confidence``) and the README sentence ("Command line") when it changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_sets  # noqa: E402  (benchmarks/real_sets.py: the real sets in one place)

SETS = ("sample_corners", "lyl8213")  # plate predict cuts CCPD photos from their corners (data.ccpd_crop)
THRESHOLDS = np.round(np.arange(0, 1, 0.01), 2)


def curve(conf: np.ndarray, right: np.ndarray) -> list[dict]:
    """Per threshold: coverage, wrong share among ok rows, shares of wrong and right readings flagged."""
    out = []
    for t in THRESHOLDS:
        ok = conf >= t
        out.append({"threshold": float(t), "coverage": float(ok.mean()),
                    "wrong_among_ok": float((~right[ok]).mean()) if ok.any() else 0.0,
                    "wrong_flagged": float((~ok[~right]).mean()) if (~right).any() else 0.0,
                    "right_flagged": float((~ok[right]).mean()) if right.any() else 0.0})
    return out


COLUMNS = ("threshold", "coverage", "wrong_among_ok", "wrong_flagged", "right_flagged")


def compact(points: list[dict]) -> list[list[float]]:
    """A curve as rows of ``COLUMNS``, rounded to 4 places (the JSON stays small and readable)."""
    return [[round(p[c], 4) for c in COLUMNS] for p in points]


def propose(points: list[dict], max_wrong: float, noise_max: float) -> float | None:
    """The lowest threshold above ``noise_max`` at which at most ``max_wrong`` of the ok rows are wrong."""
    return next((p["threshold"] for p in points if p["wrong_among_ok"] <= max_wrong and p["threshold"] > noise_max),
                None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default="models/plate_default.pt")
    ap.add_argument("--splits", nargs="+", default=["val"], choices=["train", "val", "test", "all"])
    ap.add_argument("--max-wrong", type=float, default=0.05, help="largest share of wrong readings among ok rows")
    ap.add_argument("--out", help="default: benchmarks/confidence.json for --splits val (the committed choice), "
                                  "benchmarks/confidence-SPLITS.json for others")
    ap.add_argument("--fixed-labels", action="store_true", help="score lyl8213 against its corrected labels")
    args = ap.parse_args()
    args.out = args.out or real_sets.default_out("confidence", args.splits, kept=("val",))
    from plate_lib.inference import load_model, read_plates

    ckpt = Path(args.checkpoint) if Path(args.checkpoint).is_file() else ROOT / args.checkpoint
    model, cfg = load_model(ckpt)
    sets, confs, rights = {}, [], []
    for name in (s for s in SETS if s in real_sets.present()):
        images, texts, _ = real_sets.load(name, tuple(args.splits), fixed=args.fixed_labels)
        readings = read_plates(model, cfg, images)
        conf = np.array([c for _, c in readings])
        right = np.array([p == t for (p, _), t in zip(readings, texts, strict=True)])
        sets[name] = {"n": len(texts), "word_acc": float(right.mean()), "curve": curve(conf, right)}
        confs.append(conf)
        rights.append(right)
    if not sets:
        sys.exit(f"none of the real sets {SETS} is present (../shared/data); nothing to measure")
    pooled = curve(np.concatenate(confs), np.concatenate(rights))
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in [(36, 136), (70, 220)] for _ in range(50)]
    noise_conf = [c for _, c in read_plates(model, cfg, noise)]
    threshold = propose(pooled, args.max_wrong, max(noise_conf))
    result = {"checkpoint": str(args.checkpoint), "splits": args.splits, "max_wrong": args.max_wrong,
              "labels": real_sets.LABELS[args.fixed_labels],
              "rule": f"the lowest threshold (steps of 0.01) at which at most {args.max_wrong:.0%} of the pooled ok "
                      "rows are wrong readings, above every reading of noise",
              "proposed_min_confidence": threshold, "n": int(sum(s["n"] for s in sets.values())),
              "noise_confidence_max": float(max(noise_conf)), "sets": sets, "pooled": pooled}

    names = list(sets) + ["pooled"]
    print(f"{args.checkpoint}, splits {'+'.join(args.splits)}: "
          + ", ".join(f"{n} {s['n']} plates, word acc {s['word_acc']:.3f}" for n, s in sets.items()))
    print("threshold  " + "".join(f"{n + ': coverage, wrong among ok':>40}" for n in names))
    for i in range(0, len(THRESHOLDS), 5):
        cells = [(sets[n]["curve"] if n in sets else pooled)[i] for n in names]
        print(f"{THRESHOLDS[i]:9.2f}  " + "".join(f"{c['coverage']:>32.3f}{c['wrong_among_ok']:>8.3f}" for c in cells))
    p = next((q for q in pooled if q["threshold"] == threshold), None)
    if p is None:
        print(f"no threshold keeps the wrong readings among ok rows at {args.max_wrong:.0%} or less")
    else:
        print(f"proposed predict.min_confidence: {threshold:.2f} ({result['rule']}): coverage {p['coverage']:.3f}, "
              f"wrong among ok {p['wrong_among_ok']:.3f}, flags {p['wrong_flagged']:.0%} of the wrong readings and "
              f"{p['right_flagged']:.0%} of the right ones; noise reads at most {max(noise_conf):.3f}")
    result["curve_columns"] = list(COLUMNS)
    result["pooled"] = compact(pooled)
    for s in result["sets"].values():
        s["curve"] = compact(s["curve"])
    text = json.dumps(result, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # a row a line
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
