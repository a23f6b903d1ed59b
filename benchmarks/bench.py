"""Throughput of seed_crnn and the default model, measured in ONE run on the same machine.

    python benchmarks/bench.py [--out benchmarks/results.json] [--models seed_crnn small_crnn_lite] [--compile]
    python benchmarks/bench.py --device cuda --out benchmarks/results-nvidia-h200.json

For each model, in a fresh process (so peak memory is its own): training plates/s for a full step
(batch slicing from a uint8 array, augmentation, forward, CTC + CE loss, backward, AdamW), batched inference
plates/s (batch 256), single-plate latency p50/p95, peak RSS, parameters and GFLOPs per plate; ONNX Runtime
inference too when onnxruntime is installed. Prints a table with ratios to seed_crnn and writes JSON.
``--compile`` also times the default model's training step under ``torch.compile`` (after its warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (height, width, hidden, train batch, timed train steps, timed inference batches, inference batch)
SETTINGS = {
    "seed_crnn": (128, 400, 256, 16, 3, 1, 256),
    "small_crnn": (48, 144, 128, 128, 20, 8, 256),
    "small_crnn_lite": (48, 144, 128, 128, 20, 8, 256),
}
CUDA_SETTINGS = {  # the batches profiles/seed.yaml and profiles/gpu.yaml train with
    "seed_crnn": (128, 400, 256, 96, 20, 10, 256),
    "small_crnn": (48, 144, 128, 512, 50, 20, 1024),
    "small_crnn_lite": (48, 144, 128, 512, 50, 20, 1024),
}


def gflops(model, x) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() / 1e9


def measure(name: str, device: str, queue, compiled: bool = False) -> None:
    import numpy as np
    import torch

    from plate_lib.augment import augment_batch
    from plate_lib.config import AugmentConfig
    from plate_lib.dataset import PlateBatches, SplitData, batch_loader
    from plate_lib.inference import prepare_for_inference
    from plate_lib.models import ModelSpec, build_model, count_params
    from plate_lib.plates import PROVINCES
    from plate_lib.train import plate_loss

    torch.manual_seed(0)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    h, w, hidden, bs, steps, infer_batches, infer_bs = (CUDA_SETTINGS if cuda else SETTINGS)[name]
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    spec = ModelSpec(1, h, w, len(PROVINCES), 37, hidden=hidden, ctc_steps=18)
    model = build_model(name, spec).to(dev, memory_format=torch.channels_last)  # as train.fit and load_model
    rng = np.random.default_rng(0)
    n = bs * (steps + 2)
    texts = ["皖A" + "".join(rng.choice(list("ABCDEFGHJK0123456789"), 5)) for _ in range(n)]
    data = SplitData(rng.integers(0, 255, (n, h, w, 1), dtype=np.uint8), texts, texts)
    ds = PlateBatches(data, PROVINCES)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    weights = torch.ones(len(PROVINCES), device=dev)
    gen = torch.Generator().manual_seed(0)
    use_amp = cuda
    forward = model

    def train_steps(k: int) -> float:
        t0 = time.perf_counter()
        for i, batch in enumerate(batch_loader(ds, bs, shuffle=True, pin_memory=use_amp)):
            if i == k:
                break
            x = augment_batch(batch["images"].to(dev).float().div_(255), AugmentConfig(enabled=True), gen)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                prov, ctc = forward(x)
            loss = plate_loss(prov, ctc, {k2: v.to(dev) if torch.is_tensor(v) else v for k2, v in batch.items()}, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        return k * bs / (time.perf_counter() - t0)

    train_steps(2)  # warm-up
    train = train_steps(steps)

    model = prepare_for_inference(model, dev)  # as load_model: eval, batch norm folded, channels_last
    xb = torch.rand(infer_bs, 1, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    x1 = torch.rand(1, 1, h, w, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(xb)
        model(x1)
        sync()
        t0 = time.perf_counter()
        for _ in range(infer_batches):
            model(xb)
        sync()
        infer = infer_bs * infer_batches / (time.perf_counter() - t0)
        lat = []
        for _ in range(50 if name != "seed_crnn" or cuda else 10):
            t0 = time.perf_counter()
            model(x1)
            sync()
            lat.append((time.perf_counter() - t0) * 1000)
    result = {
        "train_plates_per_s": round(train, 1),
        "infer_plates_per_s": round(infer, 1),
        "latency_ms_p50": round(statistics.median(lat), 3),
        "latency_ms_p95": round(sorted(lat)[int(0.95 * (len(lat) - 1))], 3),
        "params": count_params(model),
        "gflops": round(gflops(model.cpu(), x1.cpu()), 4),
        "input": f"1x{h}x{w}",
        "train_batch": bs,
        "infer_batch": infer_bs,
    }
    if cuda:
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    with contextlib.suppress(ImportError):  # onnxruntime is in the [export] extra; the baseline is not deployed
        if name != "seed_crnn" and not cuda:  # ONNX Runtime on the CPU: not a figure of a GPU run
            result["onnxruntime_infer_plates_per_s"] = round(ort_throughput(model.cpu(), xb.cpu()), 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if compiled:  # last, so the compiler's memory stays out of peak_rss_mb: a fresh model, compiled
        model = build_model(name, spec).to(dev, memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        forward = torch.compile(model)
        t0 = time.perf_counter()
        train_steps(3)  # compiles forward and backward
        result["compile_warmup_s"] = round(time.perf_counter() - t0, 1)
        result["train_plates_per_s_compiled"] = round(train_steps(steps), 1)
    queue.put(result)


def ort_throughput(model, xb) -> float:
    import tempfile

    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        torch.onnx.export(model, xb[:1], path, input_names=["images"], dynamic_axes={"images": {0: "batch"}},
                          dynamo=False)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feed = {"images": xb.numpy()}
        sess.run(None, feed)
        t0 = time.perf_counter()
        for _ in range(4):
            sess.run(None, feed)
        return 4 * len(xb) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    ap.add_argument("--models", nargs="+", default=list(SETTINGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time the default model's training compiled")
    args = ap.parse_args()

    import torch

    from plate_lib.config import load

    default = load(ROOT / "cfg.yaml").model.name
    ctx = mp.get_context("spawn")
    models = {}
    for name in args.models:
        q = ctx.Queue()
        p = ctx.Process(target=measure, args=(name, args.device, q, args.compile and name == default))
        p.start()
        while p.is_alive() and q.empty():
            p.join(timeout=1)
        if q.empty():
            sys.exit(f"measuring {name} failed (exit code {p.exitcode}); see the traceback above")
        models[name] = q.get()
        p.join()
        print(f"measured {name}", file=sys.stderr)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
    out = {"machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
           "device": device, "torch": torch.__version__, "default_model": default, "models": models}
    seed = models.get("seed_crnn")
    for name, d in models.items():  # every model beside the seed's, the default included
        if seed and name != "seed_crnn":
            d["train_ratio_vs_seed"] = round(d["train_plates_per_s"] / seed["train_plates_per_s"], 1)
            d["infer_ratio_vs_seed"] = round(d["infer_plates_per_s"] / seed["infer_plates_per_s"], 1)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")

    keys = ["train_plates_per_s", "train_plates_per_s_compiled", "infer_plates_per_s", "latency_ms_p50",
            "latency_ms_p95", "peak_rss_mb", "peak_gpu_mb", "params", "gflops", "onnxruntime_infer_plates_per_s"]
    print(f"device: {device}")
    print(f"{'':32}" + "".join(f"{m:>16}" for m in models) + (f"{'ratio':>10}" if "seed_crnn" in models else ""))
    for k in keys:
        vals = [models[m].get(k) for m in models]
        row = f"{k:32}" + "".join(f"{v if v is not None else '-':>16}" for v in vals)
        if "seed_crnn" in models and default in models and all(isinstance(v, (int, float)) for v in vals):
            s, d = models["seed_crnn"][k], models[default][k]
            row += f"{d / s:>9.1f}x" if s else ""
        print(row)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
