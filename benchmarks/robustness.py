"""Where a model breaks: word accuracy on real held-out crops under one degradation at a time.

    python benchmarks/robustness.py [--checkpoint models/plate_default.pt] [--split test] [--label NAME]
                                    [--out PATH] [--plot PATH] [--reference shipped] [--fixed-labels]

Reads the CCPD sample's photos (cut from their corners) and ``real-crops-lyl8213`` (136×36 street crops),
the split given (``test`` for the report, ``val`` to choose the generator's ranges on), clean and under each
degradation of ``plate_lib.degrade.ROBUSTNESS`` and each crop margin of ``plate_lib.robustness.MARGINS``
(``robustness.curves``). Writes ``benchmarks/robustness.json`` (one entry per ``--label``, kept across runs so
models can be compared) and ``benchmarks/robustness.png`` for the test split, ``benchmarks/robustness-<split>.json``
and ``.png`` for another (``real_sets.default_out``: a val run never replaces the report's curves), and prints the
table. A label the file keeps from another split or other labels is refused, not replaced. Where the file keeps other runs
on the same split, also each run against ``--reference`` (``robustness.compare``: clean, the mean under degradation,
degraded plates read more or fewer, settings better and worse). ``--fixed-labels`` scores lyl8213 against its
corrected labels (``real_sets.LABEL_FIXES``); the JSON says which labels each run was scored against.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_sets import LABELS, REAL_SETS, default_out, present, source  # noqa: E402

SETS = {"sample": "sample_corners", "lyl8213": "lyl8213"}  # curve name: real_sets' set (data, crop mode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    ap.add_argument("--label", default="shipped", help="the name this model's curves are kept under")
    ap.add_argument("--out", help="default: benchmarks/robustness.json for the test split (the report's), "
                                  "benchmarks/robustness-SPLIT.json for another")
    ap.add_argument("--plot", help="default: --out's name with .png")
    ap.add_argument("--reference", default="shipped", help="the kept run the others are compared with (where none is kept by that label: this run)")
    ap.add_argument("--fixed-labels", action="store_true", help="score lyl8213 against its corrected labels")
    args = ap.parse_args()
    args.out = args.out or str(default_out("robustness", args.split, kept=("test",)))
    args.plot = args.plot or str(Path(args.out).with_suffix(".png"))
    out = json.loads(Path(args.out).read_text(encoding="utf-8")) if Path(args.out).is_file() else {"runs": {}}
    kept = out["runs"].get(args.label)
    if kept and (kept["split"], kept.get("labels", LABELS[False])) != (args.split, LABELS[args.fixed_labels]):
        sys.exit(f"{args.out} keeps the run {args.label!r} on the {kept['split']} split, labels "
                 f"{kept.get('labels', LABELS[False])}; this run reads the {args.split} split, labels "
                 f"{LABELS[args.fixed_labels]}: give another --label or --out, so the kept curves stay")

    import torch

    from plate_lib import plots, robustness
    from plate_lib.inference import load_model

    torch.manual_seed(0)
    model, cfg = load_model(args.checkpoint)
    sets, here, labels = {}, present(), LABELS[args.fixed_labels]
    for name, real_set in SETS.items():
        if real_set in here:
            src = source(real_set, fixed=args.fixed_labels)
            sets[name] = (src, [r for r in src.records(args.split) if not r.error])
        else:
            print(f"{REAL_SETS[real_set][0]} is not here: left out", file=sys.stderr)
    if not sets:
        sys.exit("none of the sets is here; nothing to measure")
    table = robustness.curves(model, cfg, sets)
    out["runs"][args.label] = {"checkpoint": os.path.relpath(args.checkpoint, ROOT), "split": args.split,
                               "sets": {k: REAL_SETS[v][0] for k, v in SETS.items() if k in sets},
                               "labels": labels,
                               "rows": table.round(4).to_dict("records")}
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    everything = pd.concat([pd.DataFrame(r["rows"]).assign(model=label) for label, r in out["runs"].items()
                            if r["split"] == args.split and r.get("labels", LABELS[False]) == labels])  # scored alike
    plots.robustness_curves(everything, f"word accuracy under one degradation at a time ({args.split} splits, labels {labels})"
                            ).savefig(args.plot, dpi=90)
    print(table.pivot_table(index=["degradation", "strength"], columns="set", values="word_acc").round(3).to_string())
    reference = args.reference if args.reference in set(everything.model) else args.label
    if everything.model.nunique() > 1:
        print(f"\nthe {args.split} curves kept in {args.out} (labels {labels}), against {reference!r}:")
        print(robustness.compare(everything, reference).round(3).to_string(index=False))
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
