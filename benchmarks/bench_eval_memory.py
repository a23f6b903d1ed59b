"""Peak memory of evaluation over few vs many plates: ``inference.evaluate`` streams (a batch in, texts and
confidences out, no logits kept), so its peak RSS should barely grow with the number of plates.

    python benchmarks/bench_eval_memory.py [--sizes 1000 100000] [--batch 256]

Each size runs in a fresh process. Images are generated batch by batch (a lazy array), so what is measured
is evaluation's own memory, not the images' (a real split is a memory-mapped cache file).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class LazyImages:
    """uint8 [N, H, W, 1] made on demand, slice by slice: what ``predict_images`` reads, without holding N images."""

    def __init__(self, n: int, height: int, width: int):
        self.n, self.shape, self.dtype = n, (n, height, width, 1), np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, s: slice) -> np.ndarray:
        start, stop, _ = s.indices(self.n)
        return np.random.default_rng(start).integers(0, 256, (stop - start, *self.shape[1:]), np.uint8)


def child(n: int, batch: int) -> dict:
    import torch

    from plate_lib.checkpoints import model_spec
    from plate_lib.config import load
    from plate_lib.dataset import SplitData
    from plate_lib.inference import evaluate
    from plate_lib.models import build_model

    torch.manual_seed(0)
    cfg = load(None)
    model = build_model(cfg.model.name, model_spec(cfg)).eval()
    pre = cfg.preprocess
    data = SplitData(LazyImages(n, pre.height, pre.width), ["皖A12345"] * n, [f"{i:07d}.jpg" for i in range(n)])  # type: ignore[arg-type]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    summary, rows = evaluate(model, data, list(cfg.provinces), batch_size=batch)
    assert summary["n"] == n and len(rows) == n
    return {"n": n, "seconds": round(time.perf_counter() - t, 1), "rss_before_mb": round(before),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch)))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    small, large = results[0], results[-1]
    grow = (large["peak_rss_mb"] - large["rss_before_mb"]) - (small["peak_rss_mb"] - small["rss_before_mb"])
    print(f"peak RSS {small['peak_rss_mb']} MB for {small['n']} plates, {large['peak_rss_mb']} MB for {large['n']} "
          f"(ratio {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}; evaluation grew {grow} MB more for "
          f"{large['n'] / small['n']:.0f}× the plates)")


if __name__ == "__main__":
    main()
