"""Loose crops: the second look's plate finder for crops with car around the plate, against the finder without it.

    python benchmarks/loose_crops.py [--checkpoint models/plate_default.pt] [--splits train val] [--out PATH]
                                     [--fixed-labels]

A detector's padded box or a hand's generous crop holds the plate with car around it; where no plate colour spans
such a crop, ``rectify.plate_quad`` looks for the largest region of a plate colour shaped like a plate
(``rectify._loose_quad``), also inside a spanning region that is the whole crop (a car of a plate colour). This
reads, with ``read_plates`` as shipped and again with that search switched off (``_loose_quad`` returning None:
the finder before 2026-12-02), the CCPD sample's photos cut from their corners
and by their bounding box with ``MARGINS`` of the plate's size added on every side from the photo
(``robustness.margin_crop``), the real sets as given (``real_sets.REAL_SETS``) and, where ``make model``'s
synthetic zip is here, the first ``--synthetic-n`` plates of its val split. Prints plates read right of n each
way; writes JSON (without ``--out``: ``benchmarks/loose_crops.json`` for the train and val splits, the choice,
``benchmarks/loose_crops-<splits>.json`` for others). Choose on ``--splits train val``; the test splits are for
the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_sets import LABELS, relative, source, start_study  # noqa: E402

MARGINS = (0.2, 0.3, 0.5, 0.75)
MODES = ("sample_corners", "sample_bbox")  # real_sets' sets of CCPD photos, cut with the photo around the plate


def main() -> None:
    args, model, cfg, sets = start_study(__doc__, "loose_crops")
    from plate_lib import rectify
    from plate_lib.inference import read_plates
    from plate_lib.robustness import margin_crop

    for name in (m for m in MODES if m in sets):
        src = source(name, fixed=args.fixed_labels)
        recs = [r for s in args.splits for r in src.records(s) if not r.error]
        for m in MARGINS:
            sets[f"{name}+{m:g}"] = lambda src=src, recs=recs, m=m: ([margin_crop(src, r, m) for r in recs],
                                                                     [r.text for r in recs])
    finder = rectify._loose_quad
    out: dict = {"checkpoint": relative(args.checkpoint), "splits": args.splits, "labels": LABELS[args.fixed_labels],
                 "margins": list(MARGINS), "sets": {}}
    print(f"splits {'+'.join(args.splits)}: plates read right of n, the loose-crop finder on / off")
    try:
        for name, get in sets.items():
            images, truth = get()
            row = {"n": len(truth)}
            for way, fn in (("loose_finder", finder), ("without", lambda bgr, masks, max_area=1.0: None)):
                rectify._loose_quad = fn
                row[way] = sum(p == t for (p, _), t in zip(read_plates(model, cfg, images), truth, strict=True))
            out["sets"][name] = row
            print(f"{name:22} n {row['n']:5}  loose_finder {row['loose_finder']:5}  without {row['without']:5}", flush=True)
    finally:
        rectify._loose_quad = finder
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
