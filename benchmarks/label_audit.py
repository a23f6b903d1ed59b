"""Labels to check: the plates of a real set whose label several readers agree against.

    python benchmarks/label_audit.py [--set lyl8213] [--splits train val test] [--readers plate_lib hyperlpr
                                     hyperlpr_refine] [--min-agree 2] [--checkpoint …] [--sheet audit.png]

Each reader (``plate_lib.peers.READERS``; HyperLPR needs ``make peers``'s environment) reads every crop of the
splits; a plate that at least ``--min-agree`` readers read as the same other plate is listed
(``analysis.label_suspects``) with a sheet of the crops, enlarged, for a person to look at. The readers point,
a person decides: each label found wrong goes into the set's fixes file (``real_sets.LABEL_FIXES``, read with
``data.label_fixes`` or ``real_sets.py --fixed-labels``) with a note of what the crop shows. The shipped model
trained on the train splits, so it tends to read a training plate's label back, right or wrong: there the
peers do the finding. Writes ``benchmarks/label-audit-<set>.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_sets import REAL_SETS, load, present  # noqa: E402

from plate_lib.analysis import label_suspects  # noqa: E402
from plate_lib.peers import READERS, run_reader  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="lyl8213", choices=list(REAL_SETS))
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    ap.add_argument("--readers", nargs="+", default=["plate_lib", "hyperlpr", "hyperlpr_refine"], choices=READERS)
    ap.add_argument("--min-agree", type=int, default=2)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--out", help="CSV of the suspects (default benchmarks/label-audit-<set>.csv)")
    ap.add_argument("--sheet", help="PNG of the suspects' crops, enlarged, for a person to check")
    args = ap.parse_args()
    if args.set not in present():
        sys.exit(f"{REAL_SETS[args.set][0]} is not here; nothing to audit")

    crops, labels, names = load(args.set, tuple(args.splits))
    readings = {}
    for reader in args.readers:
        opts = {"checkpoint": args.checkpoint} if reader.startswith("plate_lib") else {}
        readings[reader] = run_reader(reader, crops, **opts)["texts"]
        right = sum(a == b for a, b in zip(readings[reader], labels, strict=True))
        print(f"{reader}: {right} of {len(labels)} read as labelled", file=sys.stderr)
    suspects = label_suspects(names, labels, readings, args.min_agree)
    out = Path(args.out or ROOT / "benchmarks" / f"label-audit-{args.set}.csv")
    suspects.to_csv(out, index=False)
    if len(suspects):
        print(suspects.to_string(index=False))
    print(f"{len(suspects)} of {len(labels)} labels to check ({'+'.join(args.splits)}); wrote {out}")
    if args.sheet and len(suspects):
        from plate_lib.plots import image_grid, use_cjk_font

        use_cjk_font()
        index = {n: i for i, n in enumerate(names)}
        images = [crops[index[n]] for n in suspects["name"]]
        titles = [f"{n}  label {lab}  read {r}" for n, lab, r in zip(suspects["name"], suspects["label"],
                                                                      suspects["reading"], strict=True)]
        image_grid(images, titles, ncols=3, cell=(4.0, 1.6)).savefig(args.sheet, dpi=100)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
