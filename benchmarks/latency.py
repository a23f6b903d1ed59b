"""Where one plate's time goes: each step of reading a single crop, PyTorch against ONNX Runtime, in one run.

    python benchmarks/latency.py [--checkpoint models/plate_default.pt] [--threads 1] [--sets lyl8213 ...]
                                 [--out benchmarks/latency.json]

For the first held-out crop of each real set present (``real_sets.REAL_SETS``; the test splits), the median over
300 calls (after 20 of warm-up) of: ``letterbox`` (the crop to the model's input), the network on that one input
in PyTorch (``inference.load_model``: batch norm folded, channels_last) and in ONNX Runtime
(``export.OnnxModel``), ``decode`` (``inference.decode_logits``), ``rectify`` (finding and warping the plate
for the second look), and ``read_plates`` end to end with each runtime, with and without the second look
(``rectify_below`` 1 and 0). Prints the table and the ratios PyTorch / ONNX Runtime; writes JSON. Time it on an
idle machine: another PyTorch process on the same cores skews every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peer_readers import timed  # noqa: E402
from real_sets import REAL_SETS, load, present  # noqa: E402


def median_ms(fn, n: int = 300, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    return round(statistics.median(timed(fn) for _ in range(n)) * 1e3, 3)


def time_crop(crop, model, onnx, cfg) -> dict[str, float]:
    """Each step of reading ``crop`` (BGR) alone, and the whole read, with each runtime (see the module doc)."""
    import torch

    from plate_lib.inference import decode_logits, read_plates
    from plate_lib.preprocess import letterbox
    from plate_lib.rectify import model_input

    pre, provinces = cfg.preprocess, list(cfg.provinces)
    x = torch.from_numpy(letterbox(crop, pre.height, pre.width, pre.grayscale)[None]).permute(0, 3, 1, 2)
    x = x.float().div(255)
    with torch.inference_mode():
        prov, ctc = model(x)
        row = {
            "letterbox": median_ms(lambda: letterbox(crop, pre.height, pre.width, pre.grayscale)),
            "network_torch": median_ms(lambda: model(x)),
            "network_onnx": median_ms(lambda: onnx(x)),
            "decode": median_ms(lambda: decode_logits(prov, ctc, provinces)),
            "rectify": median_ms(lambda: model_input(crop, pre.height, pre.width, pre.grayscale)),
        }
        for runtime, m in (("torch", model), ("onnx", onnx)):
            row[f"read_{runtime}"] = median_ms(lambda m=m: read_plates(m, cfg, [crop], rectify_below=0.0))
            row[f"read_{runtime}_second_look"] = median_ms(lambda m=m: read_plates(m, cfg, [crop], rectify_below=1.0))
    row["ratio_network"] = round(row["network_torch"] / row["network_onnx"], 2)
    row["ratio_read"] = round(row["read_torch"] / row["read_onnx"], 2)
    row["ratio_read_second_look"] = round(row["read_torch_second_look"] / row["read_onnx_second_look"], 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sets", nargs="+", choices=list(REAL_SETS), help="default: every set present")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "latency.json"))
    args = ap.parse_args()

    import cv2
    import torch

    from plate_lib.export import OnnxModel
    from plate_lib.inference import load_model

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model, cfg = load_model(args.checkpoint)
    onnx = OnnxModel(model, cfg.preprocess)
    sets = args.sets or present()
    if not sets:
        sys.exit(f"none of the real sets is here ({sorted({v[0] for v in REAL_SETS.values()})}); nothing to time")
    out: dict = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
                 "torch": torch.__version__, "threads": args.threads,
                 "checkpoint": os.path.relpath(args.checkpoint, ROOT), "unit": "ms, median of 300", "sets": {}}
    for name in sets:
        images, _, names = load(name, ("test",))
        row = {"crop": f"{names[0]} ({images[0].shape[1]}×{images[0].shape[0]})",
               **time_crop(images[0], model, onnx, cfg)}
        out["sets"][name] = row
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
