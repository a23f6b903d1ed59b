"""The real sets a model is measured on, in one place, and a quick reading of a checkpoint on all of them.

    python benchmarks/real_sets.py CHECKPOINT [CHECKPOINT …] [--splits train val] [--json] [--no-rectify] [--tta]
                                   [--by-colour] [--fixed-labels] [--no-colour-decoding]

Sets (``REAL_SETS``): the CCPD sample's photos cut from their corners (``sample_corners``), by their annotated
bounding box (``sample_bbox``), those box crops shrunk to 94×24 (``sample_bbox_94x24``), and the street crops
of ``real-crops-lyl8213`` (``lyl8213``). ``--splits`` picks the splits read (default ``train val``: what
generator and recipe choices may look at; the ``test`` splits are kept for the report). Prints one line per
checkpoint: word accuracy per set, and province accuracy on plates not from 皖 where a set has them.
``peers.py`` reads the same sets (their test splits). Crops are read as ``inference.read_plates`` reads them:
as given and, below cfg.yaml's ``predict.rectify_below`` confidence, rectified too, the more confident reading kept;
``--no-rectify`` reads them as given only (the network alone); ``--tta`` in three views each (``predict.tta``).
``--by-colour`` also reads each set's blue, yellow and green plates apart (``true_colours``: 8 characters are a
green plate; lyl8213's 7-character plates are coloured by ``lyl8213-colours.csv``, labelled by hand; the CCPD
sample's are blue, as every CCPD2019 plate of 7 characters).
``--fixed-labels`` reads lyl8213 with its wrong labels corrected (``LABEL_FIXES``: 16 of 862, each checked by eye;
``label_audit.py`` found them); without it, every set is scored against its labels as published.
``--no-colour-decoding`` decodes without the crops' colour (cfg.yaml's ``predict.by_colour``, on by default).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE, DEV = "../shared/data/ccpd2019-sample", "../shared/data/real-crops-lyl8213"
REAL_SETS = {  # name: (data, CCPD crop mode, resize to (w, h) or None, description)
    "sample_corners": (SAMPLE, "corners", None, "CCPD sample photos, cut from the 4 annotated corners (220x70)"),
    "sample_bbox": (SAMPLE, "bbox", None, "the same photos cut by their annotated bounding box (as CCPD2019-dl1)"),
    "sample_bbox_94x24": (SAMPLE, "bbox", (94, 24), "the same bounding-box crops resized to 94x24"),
    "lyl8213": (DEV, "corners", None, "real-crops-lyl8213 (split by a hash of the plate text), 136x36 street crops"),
}
COLOURS_CSV = ROOT / "benchmarks" / "lyl8213-colours.csv"  # file,colour: lyl8213's plate colours, labelled by hand
LABEL_FIXES = {"lyl8213": ROOT / "benchmarks" / "lyl8213-label-fixes.csv"}  # file,label,note: labels corrected
LABELS = {False: "as published", True: "corrected"}  # how a benchmark's JSON names the labels it scored against


def present() -> list[str]:
    return [name for name, (data, *_) in REAL_SETS.items() if (ROOT / data).is_dir()]


def source(name: str, fixed: bool = False):
    """The set's source, with its crop mode and size (``fixed``: its labels corrected by ``LABEL_FIXES``)."""
    from plate_lib.sources import open_source

    data, crop, size, _ = REAL_SETS[name]
    return open_source(ROOT / data, ccpd_crop=crop, resize=size, label_fixes=LABEL_FIXES.get(name) if fixed else None)


def load(name: str, splits: tuple[str, ...] = ("test",), fixed: bool = False) -> tuple[list, list[str], list[str]]:
    """The crops (BGR), plate texts and names of ``splits`` of a set (``fixed``: labels corrected)."""
    return load_source(source(name, fixed), splits)


def load_source(src, splits: tuple[str, ...]) -> tuple[list, list[str], list[str]]:
    """The crops (BGR), plate texts and names of ``splits`` of any source (``sources.open_source``)."""
    recs = [r for split in splits for r in src.records(split) if not r.error]
    return [src.load(r) for r in recs], [r.text for r in recs], [r.name for r in recs]


def true_colours(name: str, names: list[str], texts: list[str]) -> list[str]:
    """The colour of each plate of a real set: ``green`` for 8 characters (new-energy plates); for 7, lyl8213's hand
    labels (``COLOURS_CSV``, by file name) and ``blue`` for the CCPD sample (CCPD2019 has no yellow plates)."""
    labels = {}
    if name == "lyl8213":
        with COLOURS_CSV.open(encoding="utf-8", newline="") as f:
            labels = {row["file"]: row["colour"] for row in csv.DictReader(f)}
    out = []
    for n, t in zip(names, texts, strict=True):
        if len(t) == 8:
            out.append("green")
        elif name == "lyl8213":
            if n not in labels:
                raise SystemExit(f"{COLOURS_CSV}: no colour for {n}; label it (file,colour)")
            out.append(labels[n])
        else:
            out.append("blue")
    return out


def default_out(stem: str, splits: list[str] | str, kept: tuple[str, ...], suffix: str = ".json") -> Path:
    """Where a benchmark writes when ``--out`` is not given: ``benchmarks/<stem><suffix>``, the committed file, when
    ``splits`` are the ``kept`` ones it holds; else ``benchmarks/<stem>-<split>[-<split>…]<suffix>``, so that a run
    on other splits (a test split read for the report, a val split to choose on) never replaces the committed one."""
    splits = [splits] if isinstance(splits, str) else list(splits)
    name = stem if sorted(splits) == sorted(kept) else "-".join([stem, *splits])
    return ROOT / "benchmarks" / f"{name}{suffix}"


def add_study_args(ap) -> None:
    """The options of a study that reads a checkpoint on the real sets and the synthetic val split
    (``second_look.py``, ``tta.py``); ``--out`` is left ``None`` for ``default_out``."""
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"])
    ap.add_argument("--out", help="where the JSON goes (default: benchmarks/NAME.json for --splits train val, the "
                                  "committed choice; benchmarks/NAME-SPLITS.json for other splits)")
    ap.add_argument("--synthetic", default=str(ROOT / "data" / "synthetic-model.zip"),
                    help="a synthetic zip whose val split is read too, where it exists")
    ap.add_argument("--synthetic-n", type=int, default=6000)
    ap.add_argument("--fixed-labels", action="store_true", help="score lyl8213 against its corrected labels")


def start_study(doc: str, stem: str):
    """A study's start (``second_look.py``, ``tta.py``): its options parsed (``add_study_args``; ``--out`` defaulting
    to ``default_out(stem, …)`` kept for train and val), the checkpoint loaded to read on at most 2 threads, and its
    sets (``study_sets``). Returns ``(args, model, cfg, sets)``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_args(ap)
    args = ap.parse_args()
    args.out = args.out or default_out(stem, args.splits, kept=("train", "val"))

    import torch

    from plate_lib.inference import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, cfg = load_model(args.checkpoint)
    return args, model, cfg, study_sets(args)


def study_sets(args) -> dict:
    """``{name: () -> (crops, texts)}``: ``args.splits`` of each real set present, and where ``args.synthetic``
    exists the first ``args.synthetic_n`` plates of its val split (``synthetic_val``); exits when none is here.
    ``args.fixed_labels``: lyl8213's texts corrected (``LABEL_FIXES``)."""
    sets = {name: lambda name=name: load(name, tuple(args.splits), args.fixed_labels)[:2] for name in present()}
    if Path(args.synthetic).is_file():
        sets["synthetic_val"] = lambda: synthetic_val(args.synthetic, args.synthetic_n)
    if not sets:
        sys.exit(f"none of the real sets is here ({sorted({v[0] for v in REAL_SETS.values()})}) and no "
                 f"{args.synthetic}; nothing to measure")
    return sets


def synthetic_val(path: str, n: int) -> tuple[list, list[str]]:
    """The crops and texts of the first ``n`` plates of a synthetic zip's val split."""
    from plate_lib.sources import open_source

    src = open_source(path)
    recs = [r for r in src.records("val") if not r.error][:n]
    return [src.load(r) for r in recs], [r.text for r in recs]


def relative(path: str) -> str:
    """``path`` relative to the project where it lies inside it (for JSON written into benchmarks/)."""
    full = Path(path).resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(full)


def read(checkpoint: str | Path, splits: tuple[str, ...], rectify: bool = True, tta: bool = False,
         by_colour: bool = False, fixed: bool = False, colour_decoding: bool = True) -> dict[str, dict]:
    """``metrics.summarize`` of the checkpoint on each present set (``rectify``: as ``read_plates`` reads by
    default, else each crop once, as given); with ``by_colour``, each set's also holds ``by_colour``: the same for
    its blue, yellow and green plates apart (``true_colours``); ``fixed``: against the corrected labels;
    ``colour_decoding``: decoded by the crops' colour as cfg.yaml's ``predict.by_colour`` says (else never)."""
    import pandas as pd

    from plate_lib.analysis import group_metrics
    from plate_lib.config import load as load_config
    from plate_lib.inference import load_model, read_plates
    from plate_lib.metrics import summarize

    model, cfg = load_model(checkpoint)
    settings = load_config(ROOT / "cfg.yaml").predict  # as `plate evaluate` reads
    below = settings.rectify_below if rectify else 0.0
    out = {}
    for name in present():
        images, texts, names = load(name, splits, fixed)
        preds = [p for p, _ in read_plates(model, cfg, images, rectify_below=below, tta=tta,
                                           by_colour=settings.by_colour and colour_decoding)]
        out[name] = summarize(preds, texts)
        if by_colour:
            coloured = pd.DataFrame({"pred": preds, "true": texts, "colour": true_colours(name, names, texts)})
            out[name]["by_colour"] = group_metrics(coloured, "colour")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test", "all"])
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--no-rectify", dest="rectify", action="store_false", help="read crops as given only")
    ap.add_argument("--tta", action="store_true", help="read each crop in three views, voting (predict.tta)")
    ap.add_argument("--by-colour", action="store_true", help="also read blue, yellow and green plates apart")
    ap.add_argument("--fixed-labels", action="store_true", help="score lyl8213 against its corrected labels")
    ap.add_argument("--no-colour-decoding", dest="colour_decoding", action="store_false",
                    help="decode without the crops' colour (predict.by_colour false)")
    args = ap.parse_args()
    results = {c: read(c, tuple(args.splits), args.rectify, args.tta, args.by_colour, args.fixed_labels,
                       args.colour_decoding)
               for c in args.checkpoints}
    if args.json:  # NaN (no plate from outside 皖) is not JSON: null
        def clean_metrics(m: dict) -> dict:
            return {k: (clean_metrics(v) if isinstance(v, dict) else None if v != v else v) for k, v in m.items()}

        clean = {c: {n: clean_metrics(m) for n, m in r.items()} for c, r in results.items()}
        print(json.dumps({"splits": args.splits, "rectify": args.rectify, "tta": args.tta,
                          "colour_decoding": args.colour_decoding,
                          "fixed_labels": args.fixed_labels, "sets": {n: REAL_SETS[n][3] for n in present()},
                          "checkpoints": clean}, indent=1, ensure_ascii=False))
        return
    names = present()
    print(f"splits {'+'.join(args.splits)}, {'rectified' if args.rectify else 'as given'}{', tta' if args.tta else ''}"
          f"{', labels fixed' if args.fixed_labels else ''}; "
          "word accuracy (non-皖 province accuracy)")
    print(f"{'checkpoint':40}" + "".join(f"{n:>22}" for n in names))
    for c, r in results.items():
        cells = "".join(f"{r[n]['word_acc']:>13.3f} ({r[n]['province_acc_non_wan']:.3f})" for n in names)
        print(f"{str(c)[-40:]:40}{cells}  n={'/'.join(str(r[n]['n']) for n in names)}")
        for n in names if args.by_colour else []:
            print(f"  {n:22}" + "".join(f"  {g} {m['word_acc']:.3f} (n={m['n']})" for g, m in r[n]["by_colour"].items()))


if __name__ == "__main__":
    main()
