"""End-to-end throughput of ``plate predict`` on a folder of crops: files in, one row per plate out.

    python benchmarks/bench_predict.py [--n 1000] [--repeats 3] [--checkpoint models/plate_default.pt]
                                       [--out benchmarks/predict_throughput.json]

Writes ``--n`` generated plate crops as JPEGs (``synth.iter_plates``: the generator's mix of corner-cut 220×70
and bounding-box crops, quality 90) into a temporary folder that is deleted afterwards, then times
``python -m plate_lib predict FOLDER --quiet`` in a fresh process, its output to a file, ``--repeats`` times, and
the same on one crop (start-up: imports and loading the model), with a graph cache of its own
(``PLATE_LIB_CACHE``, ``graph.py``): the one-crop start-up is timed with the cache emptied before each run
(``startup_cold_s``: torch imported, the checkpoint exported) and with the graph cached (``startup_s``: what
every later start takes, torch not imported), and the folder with it cached. Reports plates/s end to end (n /
wall time of the best run) and after start-up ((n - 1) / (best n-run time - best cached 1-run time)), with the
machine's CPU count and load average, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_crops(folder: Path, n: int) -> None:
    import cv2

    from plate_lib.synth import iter_plates

    for i, (image, _) in enumerate(iter_plates(n, seed=11, split="test")):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (folder / f"{i:05d}.jpg").write_bytes(buf.tobytes())


def timed(args: list[str], cwd: Path, out: Path, cache: Path, cold: bool = False) -> float:
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "PLATE_LIB_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with out.open("w", encoding="utf-8") as f:
        subprocess.run([sys.executable, "-m", "plate_lib", "predict", *args, "--quiet"], cwd=cwd, env=env,
                       stdout=f, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", default="models/plate_default.pt")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "predict_throughput.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="plate-predict-bench-") as tmp:
        work = Path(tmp)
        crops = work / "crops"
        crops.mkdir()
        write_crops(crops, args.n)
        ckpt = Path(args.checkpoint) if Path(args.checkpoint).is_file() else ROOT / args.checkpoint
        ckpt = ["--checkpoint", str(ckpt.resolve())]
        load = os.getloadavg()
        cache, one_crop = work / "graphs", [*ckpt, "crops/00000.jpg"]
        cold = min(timed(one_crop, work, work / "one.tsv", cache, cold=True) for _ in range(args.repeats))
        one = min(timed(one_crop, work, work / "one.tsv", cache) for _ in range(args.repeats))
        many = min(timed([*ckpt, "crops"], work, work / "all.tsv", cache) for _ in range(args.repeats))
        rows = (work / "all.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == args.n, f"expected {args.n} rows, got {len(rows)}"
    result = {"n": args.n, "checkpoint": args.checkpoint, "repeats": args.repeats,
              "command": f"plate predict FOLDER --quiet > rows.tsv ({args.n} JPEG crops)",
              "wall_s": round(many, 3), "startup_s": round(one, 3), "startup_cold_s": round(cold, 3),
              "plates_per_s_end_to_end": round(args.n / many, 1),
              "plates_per_s_after_startup": round((args.n - 1) / max(many - one, 1e-9), 1),
              "cpus": os.cpu_count(), "load_average_before": [round(v, 2) for v in load],
              "machine": platform.platform(), "python": platform.python_version()}
    print(f"plate predict on {args.n} crops: {many:.2f} s ({result['plates_per_s_end_to_end']} plates/s end to end); "
          f"start-up {one:.2f} s ({cold:.2f} s before the graph was cached), "
          f"{result['plates_per_s_after_startup']} plates/s after it; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} before")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
