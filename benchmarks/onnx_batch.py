"""Batched reading in ONNX Runtime: a batch spread over the threads in parts, against one session of n threads.

    python benchmarks/onnx_batch.py [--threads 2] [--rounds 5] [--checkpoint models/plate_default.pt]
                                    [--out benchmarks/onnx_batch.json]

``export.OnnxModel.run_images`` sends a batch in parts of at most ``export.PART_PLATES`` plates to n workers,
each running a one-thread session; ``PART_PLATES = 0`` sends it whole to one n-thread session (how it ran
before). This reads the same crops both ways with ``inference.read_plates`` (letterbox, network, decoding and
the second look: a whole batched read), alternating the two for ``--rounds`` rounds of 5 reads, and prints the
median ms a plate and the ratio, measured in this one run. Crops: 500 generated ones (``synth.iter_plates``,
the generator's mix of corner cut-outs and tilted bounding-box crops) and the real sets' test splits where
their data is beside the repository (``real_sets.py``). The readings of the two ways must be the same.
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
        sets[name] = load(name, ("test",))[0]
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--generated", type=int, default=500, help="generated crops read besides the real sets")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "onnx_batch.json"))
    args = ap.parse_args()

    import cv2
    import torch

    from plate_lib import export
    from plate_lib.inference import load_model, read_plates

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, cfg = load_model(args.checkpoint)
    onnx = export.OnnxModel(model, cfg.preprocess)
    ways = {"one_session": 0, "parts": export.PART_PLATES}
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": args.threads,
                 "part_plates": export.PART_PLATES, "checkpoint": os.path.relpath(args.checkpoint, ROOT),
                 "unit": f"ms a plate, median of {args.rounds} rounds of 5 whole-batch reads", "sets": {}}
    for name, images in crop_sets(args.generated).items():
        times: dict[str, list[float]] = {way: [] for way in ways}
        readings = {}
        for _ in range(args.rounds):
            for way, part in ways.items():  # alternated, so a drift of the machine's speed falls on both
                export.PART_PLATES = part
                readings[way] = read_plates(onnx, cfg, images)  # also the warm-up
                t0 = time.perf_counter()
                for _ in range(5):
                    read_plates(onnx, cfg, images)
                times[way].append((time.perf_counter() - t0) / 5 / len(images) * 1000)
        if [t for t, _ in readings["one_session"]] != [t for t, _ in readings["parts"]]:
            sys.exit(f"{name}: the two ways read different plates")
        ms = {way: round(statistics.median(v), 4) for way, v in times.items()}
        row = {"n": len(images), **{f"{way}_ms": v for way, v in ms.items()},
               "speed_ratio": round(ms["one_session"] / ms["parts"], 3)}
        out["sets"][name] = row
        print(f"{name:18} n {len(images):4}: one {args.threads}-thread session {ms['one_session']:.3f} ms a plate, "
              f"parts on {args.threads} threads {ms['parts']:.3f}: {row['speed_ratio']:.2f}x")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
