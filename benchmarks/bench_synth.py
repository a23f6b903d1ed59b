"""Synthetic plate throughput: plates/s of ``synth.generate_zip`` with one process and with all cores.

    python benchmarks/bench_synth.py [--n 5000]

Counts everything a training run waits for: rendering, degrading, JPEG encoding and writing the zip.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plate_lib.synth import SynthConfig, generate_zip  # noqa: E402


def plates_per_second(n: int, workers: int, folder: Path) -> tuple[float, float]:
    """Plates per wall-clock second, and per CPU second of this process (meaningful for workers=1)."""
    cfg = SynthConfig(n_train=n, n_test=0, workers=workers, seed=1)
    wall, cpu = time.perf_counter(), time.process_time()
    generate_zip(folder / f"synthetic-{workers}.zip", cfg, progress=False)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="plates per measurement (default 5000)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.n} plates per measurement, {cores} cores, 1-minute load average before: {load:.1f}"
          + ("  (other processes are busy: numbers will be low)" if load > 0.5 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        generate_zip(Path(tmp) / "warm-up.zip", SynthConfig(n_train=64, n_test=0, workers=1), progress=False)
        one, per_cpu_second = plates_per_second(args.n, 1, Path(tmp))
        print(f"workers=1: {one:7.0f} plates/s  ({1000 / per_cpu_second:.2f} ms of CPU per plate)")
        every, _ = plates_per_second(args.n, 0, Path(tmp))
        print(f"workers=0 ({cores} processes): {every:7.0f} plates/s")
        print(f"ratio all cores / one: {every / one:.2f}x")


if __name__ == "__main__":
    main()
