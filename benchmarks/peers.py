"""plate_lib beside the recognisers people already use (HyperLPR, LPRNet): the same real plates, one run.

    make peers            # builds .venv-peers (HyperLPR needs OpenCV 4), then runs this
    python benchmarks/peers.py [--checkpoint models/plate_default.pt] [--readers …] [--sets …] [--passes 3]

Every reader (``plate_lib.peers.READERS``: the shipped model in PyTorch, in ONNX Runtime, and in ONNX Runtime
with its test-time views (``predict.tta``); HyperLPR's recogniser alone, HyperLPR after its own refinement step,
LPRNet) reads every set, each in a fresh process of its own (``benchmarks/peer_readers.py``), run as its own code
runs it: its preprocessing, its decoding, its character table. Sets, all real, all held out from the shipped model's training and choosing:

- ``sample_corners``: the CCPD sample's test split (92 photos), cut out from the 4 annotated corners;
- ``sample_bbox``: the same photos cut by their annotated bounding box, as CCPD2019-dl1 made its crops;
- ``sample_bbox_94x24``: those bounding-box crops shrunk to 94×24 (LPRNet's input size);
- ``lyl8213_test``: the test split of ``real-crops-lyl8213`` (by a hash of the plate text).

Per reader and set: word, character and province accuracy; plates/s (batched where the reader batches, else
one plate after another, at 2 threads); one plate's latency p50/p95 at 1 thread and at 2 (crop to text); each
timing the best of ``--passes`` (3) rounds, one in each of as many passes over the readers in turn
(``peers.best_timings``): a round a slow spell of the machine or another process disturbs reads slower, and in
turns such a spell slows one round of every reader rather than every round of one; every round lasts at least
1.5 s (``peer_readers.ROUND_S``), so a fast reader's rounds sample the machine as long as a slow one's;
the process's peak RSS. Every reader is paired plate by plate with ``plate_lib`` (``metrics.paired_comparison``:
the plates only one of the two got wrong, exact McNemar p). A plate holding a character outside a reader's
table counts as that reader's error, and the count is written (``cannot_emit``). Writes
``benchmarks/peers.json`` and ``benchmarks/peers-plates.csv`` (every reading) and prints a table. Time it
with nothing else running: two processes on 2 cores slow each other.

Where a set has corrected labels (``real_sets.LABEL_FIXES``: lyl8213), the same readings are scored again against
them (``fixed_labels`` in the JSON, ``true_fixed`` in the CSV; a plate that the fixes move out of the test split,
another image of a training plate, is left out there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peer_readers import ROUND_S  # noqa: E402  (no torch: peak RSS stays each reader's own)
from real_sets import LABEL_FIXES, REAL_SETS, load, source  # noqa: E402

from plate_lib.metrics import paired_comparison, summarize  # noqa: E402
from plate_lib.peers import LPRNET_WEIGHTS, READERS, best_timings, missing, run_reader  # noqa: E402

# the test split of each real set (the name keeps the split: these are the held-out plates)
SETS = {("lyl8213_test" if name == "lyl8213" else name): name for name in REAL_SETS}
BASE = "plate_lib"


def score(texts: list[str], truth: list[str], alphabet: str | None, base_correct: list[bool] | None) -> dict:
    """Accuracy, and with ``base_correct`` the paired split against plate_lib; ``cannot_emit`` where the reader's
    ``alphabet`` is given."""
    s = summarize(texts, truth)
    out = {k: round(s[k], 4) for k in ("word_acc", "char_acc", "province_acc")}
    out["n"] = s["n"]
    if alphabet is not None:
        out["cannot_emit"] = sum(1 for t in truth if set(t) - set(alphabet))
    if base_correct is not None:
        p = paired_comparison([a == b for a, b in zip(texts, truth, strict=True)], base_correct)
        out["vs_plate_lib"] = {"only_this_wrong": p["only_a_wrong"], "only_plate_lib_wrong": p["only_b_wrong"],
                               "p_value": float(f"{p['p_value']:.2g}")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--lprnet-weights", default=str(LPRNET_WEIGHTS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "peers.json"))
    ap.add_argument("--passes", type=int, default=3, help="timing passes over the readers in turn; best of them")
    args = ap.parse_args()
    if BASE not in args.readers:
        args.readers.insert(0, BASE)  # everything is paired with it

    absent = {r: why for r in args.readers if (why := missing(r, args.lprnet_weights))}
    for r, why in absent.items():
        print(f"{r}: left out: {why}", file=sys.stderr)
    if BASE in absent:
        sys.exit(f"cannot run plate_lib's own reader: {absent[BASE]}")
    sets = [s for s in args.sets if (ROOT / REAL_SETS[SETS[s]][0]).is_dir()]
    if not sets:
        sys.exit(f"none of the sets' data is here ({sorted({v[0] for v in REAL_SETS.values()})}); nothing to compare on")

    options = {**{r: {"checkpoint": args.checkpoint} for r in ("plate_lib", "plate_lib_onnx", "plate_lib_tta")},
               "lprnet": {"lprnet_weights": args.lprnet_weights}}
    out: dict = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, no GPU",
                 "checkpoint": os.path.relpath(args.checkpoint, ROOT), "sets": {}, "readers": {},
                 "notes": {}}
    plates = []
    for name in sets:
        images, truth, names = load(SETS[name], ("test",))
        out["sets"][name] = {"n": len(truth), "source": REAL_SETS[SETS[name]][3] + ", test split",
                             "path": REAL_SETS[SETS[name]][0],
                             "green_plates": sum(len(t) == 8 for t in truth),
                             "non_wan_plates": sum(t[0] != "皖" for t in truth)}
        base_correct = None
        table = pd.DataFrame({"set": name, "name": names, "true": truth})
        here = [r for r in args.readers if r not in absent]
        runs = {r: [] for r in here}
        for _ in range(args.passes):  # the readers in turn, a timing round each, so that a slow spell hits them alike
            for reader in here:
                runs[reader].append(run_reader(reader, images, timing=True, rounds=1, **options.get(reader, {})))
        for reader in here:
            got = best_timings(runs[reader])
            if got["readings_differ"]:
                print(f"{name}: {reader} read {got['readings_differ']} crops otherwise in another pass; the first "
                      "pass's readings are scored", file=sys.stderr)
            row = score(got["texts"], truth, got["alphabet"], base_correct if reader != BASE else None)
            if reader == BASE:
                base_correct = [a == b for a, b in zip(got["texts"], truth, strict=True)]
            row |= {"plates_per_s": got["plates_per_s"], "batched": got["batched"],
                    "latency_ms_p50": got["latency_ms_1_thread"]["p50"],
                    "latency_ms_p95": got["latency_ms_1_thread"]["p95"],
                    "latency_ms_p50_2_threads": got["latency_ms_2_thread"]["p50"],
                    "latency_ms_p95_2_threads": got["latency_ms_2_thread"]["p95"],
                    "peak_rss_mb": got["peak_rss_mb"], "flush_denormal": got["flush_denormal"],
                    "readings_differ": got["readings_differ"]}
            out["readers"].setdefault(reader, {})[name] = row
            table[reader] = got["texts"]
            print(f"{name}: {reader} read {row['word_acc']:.3f}", file=sys.stderr)
        if SETS[name] in LABEL_FIXES:
            fixed = {r.name: r.text for r in source(SETS[name], fixed=True).records("test")}
            table["true_fixed"] = [fixed.get(n, "") for n in names]
            out.setdefault("fixed_labels", {})[name] = score_fixed(table, [r for r in args.readers if r not in absent])
        plates.append(table)
    out["notes"] = {
        "latency": "one plate, crop to text (each reader's preprocessing and decoding included), at 1 thread "
                   "(latency_ms_p50/p95) and 2 threads (*_2_threads); after 10 warm-up readings, rounds of at least 200 readings and "
                   f"{ROUND_S} s (peer_readers.ROUND_S), in the round of "
                   f"the lowest p50 of {args.passes}, one round in each of {args.passes} passes over the readers in turn "
                   "(timeit's best of: a round a slow spell of the machine disturbs reads slower, and taken in turns "
                   "it slows one round of every reader, not every round of one)",
        "plates_per_s": f"at 2 threads, the fastest of {args.passes} rounds of at least {ROUND_S} s taken so; batched: the whole set in one batch (plate_lib, ONNX Runtime, LPRNet); "
                        "not batched: one plate after another (HyperLPR reads one plate per call)",
        "lprnet": "reads one plate at a time: its forward pass normalises by a mean over the whole batch, so a "
                  "batched reading depends on the batch-mates; flush_denormal says whether denormal floats were "
                  "flushed to zero (on for LPRNet: without it they slow it down on a CPU)",
        "hyperlpr_refine": "HyperLPR's finetune step (corner regression, warp to 136x36) on the crop, then its "
                           "recogniser, as plate_recognition does with each detected plate",
        "cannot_emit": "plates holding a character outside the reader's table; counted as its errors",
        "fixed_labels": "the same readings scored against the corrected labels of real_sets.LABEL_FIXES (true_fixed "
                        "in the CSV; a plate the fixes move out of the test split is left out)",
        "absent": absent,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    pd.concat(plates).to_csv(Path(args.out).with_name("peers-plates.csv"), index=False)
    print(table_text(out))
    for name, per_reader in out.get("fixed_labels", {}).items():
        print(f"{name}, labels fixed: " + "; ".join(
            f"{reader} {r['word_acc']:.3f}" + (f" ({r['vs_plate_lib']['only_this_wrong']} / "
                                              f"{r['vs_plate_lib']['only_plate_lib_wrong']}, p {r['vs_plate_lib']['p_value']:.2g})"
                                              if "vs_plate_lib" in r else "")
            for reader, r in per_reader.items()))
    print(f"wrote {args.out}")


def score_fixed(table: pd.DataFrame, readers: list[str]) -> dict[str, dict]:
    """Each reader's ``score`` against ``table``'s corrected labels (``true_fixed``; "" = not in the split)."""
    kept = table[table["true_fixed"] != ""]
    truth = kept["true_fixed"].tolist()
    base_correct = [a == b for a, b in zip(kept[BASE], truth, strict=True)]
    return {reader: score(kept[reader].tolist(), truth, None, base_correct if reader != BASE else None)
            for reader in readers}  # cannot_emit is counted on the published labels only


def table_text(out: dict) -> str:
    head = (f"{'set':18}{'reader':16}{'n':>5}{'word':>7}{'char':>7}{'prov':>7}{'plates/s':>10}"
            f"{'p50 1t':>8}{'p95 1t':>8}{'p50 2t':>8}{'RSS MB':>8}   only this / only plate_lib wrong (p)")
    lines = [head]
    for name in out["sets"]:
        for reader, per_set in out["readers"].items():
            r = per_set.get(name)
            if r is None:
                continue
            vs = r.get("vs_plate_lib")
            pair = f"{vs['only_this_wrong']} / {vs['only_plate_lib_wrong']} (p {vs['p_value']:.2g})" if vs else ""
            rate = f"{r['plates_per_s']:.0f}" + ("" if r["batched"] else "*")
            lines.append(f"{name:18}{reader:16}{r['n']:>5}{r['word_acc']:>7.3f}{r['char_acc']:>7.3f}"
                         f"{r['province_acc']:>7.3f}{rate:>10}{r['latency_ms_p50']:>8.2f}{r['latency_ms_p95']:>8.2f}"
                         f"{r['latency_ms_p50_2_threads']:>8.2f}{r['peak_rss_mb']:>8.0f}   {pair}")
    return "\n".join(lines) + "\n(* one plate after another: the reader does not batch)"


if __name__ == "__main__":
    main()
