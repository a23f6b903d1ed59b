"""Batched reading on the CPU, in one run: the network's batch size (PyTorch) and a batch in parts (ONNX Runtime).

    python benchmarks/batch.py [--threads 2] [--rounds 5] [--checkpoint models/plate_default.pt]
                               [--out benchmarks/batch.json]

Two comparisons of whole batched reads (``inference.read_plates``: letterbox, network, decoding and the second
look), each pair alternated for ``--rounds`` rounds of 5 reads so that a drift of the machine's speed falls on
both, with the median ms a plate and the ratio:

- PyTorch with batches of 256 plates (``training.eval_batch_size`` before) against the default
  (``inference.EVAL_BATCH``): on a small CPU the activations of 256 plates overflow the cache.
- ONNX Runtime with the batch read whole, by one session of n threads (``OnnxModel(…, part_plates=0)``, as before)
  against in parts of at most ``export.PART_PLATES`` crops, each read end to end (letterbox, network, decoding, second
  look) by one of n workers on a one-thread session (``OnnxModel.in_parts``).

Crops: 500 generated ones (``synth.iter_plates``, the generator's mix of corner cut-outs and tilted
bounding-box crops) and the real sets, all their splits, where their data is beside the repository
(``real_sets.py``). The two readings of each pair must be the same plates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def crop_sets(n_generated: int) -> dict[str, list]:
    from real_sets import load, present

    from plate_lib.synth import iter_plates

    sets = {"generated": [image for image, _ in iter_plates(n_generated, seed=11, split="test")]}
    for name in present():
        sets[name] = load(name, ("train", "val", "test"))[0]  # all splits: timing chooses nothing
    return sets


def timed_pair(ways: dict, rounds: int, n: int) -> tuple[dict[str, float], dict[str, list]]:
    """``ways``: name → a function reading the crops. Median ms a plate of each, alternated, and their readings."""
    times: dict[str, list[float]] = {way: [] for way in ways}
    readings = {}
    for _ in range(rounds):
        for way, read in ways.items():
            readings[way] = read()  # also the warm-up
            t0 = time.perf_counter()
            for _ in range(5):
                read()
            times[way].append((time.perf_counter() - t0) / 5 / n * 1000)
    return {way: round(statistics.median(v), 4) for way, v in times.items()}, readings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--generated", type=int, default=500, help="generated crops read besides the real sets")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "batch.json"))
    args = ap.parse_args()

    import cv2
    import torch

    from plate_lib import export
    from plate_lib.inference import EVAL_BATCH, load_model, read_plates

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, cfg = load_model(args.checkpoint)
    onnx, onnx_whole = export.OnnxModel(model, cfg.preprocess), export.OnnxModel(model, cfg.preprocess, part_plates=0)

    def read(net, images, batch):
        return lambda: read_plates(net, cfg, images, batch_size=batch)

    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": args.threads,
                 "eval_batch": EVAL_BATCH, "part_plates": onnx.part_plates, "checkpoint": os.path.relpath(args.checkpoint, ROOT),
                 "unit": f"ms a plate, median of {args.rounds} rounds of 5 whole-batch reads", "sets": {}}
    for name, images in crop_sets(args.generated).items():
        row: dict = {"n": len(images)}
        pairs = {"torch": {"batch_256": read(model, images, 256), f"batch_{EVAL_BATCH}": read(model, images, EVAL_BATCH)},
                 "onnx": {"one_session": read(onnx_whole, images, EVAL_BATCH), "parts": read(onnx, images, EVAL_BATCH)}}
        for runtime, ways in pairs.items():
            ms, readings = timed_pair(ways, args.rounds, len(images))
            (a, ta), (b, tb) = ms.items()
            if [t for t, _ in readings[a]] != [t for t, _ in readings[b]]:
                sys.exit(f"{name}: {runtime} read different plates {a} and {b}")
            row[runtime] = {f"{a}_ms": ta, f"{b}_ms": tb, "speed_ratio": round(ta / tb, 3)}
            print(f"{name:18} n {len(images):4} {runtime:5}: {a} {ta:.3f} ms a plate, {b} {tb:.3f}: {ta / tb:.2f}x")
        out["sets"][name] = row
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
