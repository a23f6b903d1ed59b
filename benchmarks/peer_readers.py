"""One plate reader in a process of its own: reads a set of crops and times itself (``benchmarks/peers.py``).

    python benchmarks/peer_readers.py READER --images SET.npz --out OUT.json [--timing] [options]

READER is one of:

- ``plate_lib``: the shipped model (``--checkpoint``), batched PyTorch as ``inference.read_plates`` runs it
  (each crop read as given and, where unsure, rectified; the more confident reading kept);
- ``plate_lib_onnx``: the same model run by ONNX Runtime (``predict.runtime: onnx``, ``export.OnnxModel``), same
  preprocessing, rectification and decoding;
- ``plate_lib_tta``: ``plate_lib_onnx`` with its test-time views (``predict.tta``: unsure crops also read padded
  and cut, the readings voting);
- ``hyperlpr``: HyperLPR's segmentation-free recogniser alone (``hyperlpr2``: an OpenCV-DNN Caffe model, crop
  resized to 160×40, its own CTC decoding and character table);
- ``hyperlpr_refine``: the same after HyperLPR's own refinement (``LPR.finetune``: a small network regresses
  the plate's corners twice and warps the crop to 136×36), the step its ``plate_recognition`` applies to each
  detected plate before recognising it;
- ``hyperlpr_photos``: HyperLPR's whole pipeline on whole photos (``HyperLPR_plate_recognition``: its cascade
  detector, the refinement above and the recogniser), the most confident plate it finds kept ("" where none);
  ``benchmarks/photos.py --hyperlpr``;
- ``lprnet``: LPRNet (Zherzdev & Gruzdev 2018) with the pretrained weights of sirius-ai/LPRNet_Pytorch
  (``--lprnet-weights``; the module below is written here to match their names and shapes): BGR crop resized to
  94×24, ``(x - 127.5) / 128``, greedy CTC over 18 positions, blank last. Its forward pass divides each
  global-context feature by a mean taken over the whole batch, so a plate's reading depends on its
  batch-mates: it reads one plate at a time here, and is timed batched only for throughput.

The ``hyperlpr*`` readers need ``hyperlpr2`` and OpenCV 4 (it calls ``cv2.CascadeClassifier``, which OpenCV 5
removed), so ``peers.py`` runs them with ``.venv-peers/bin/python`` (``make peers`` builds it); this file
imports nothing from plate_lib unless the reader is ``plate_lib*``.

Input: an ``.npz`` written by ``plate_lib.peers.write_images`` (raw BGR crops of any size, no pickles).
Output JSON: ``texts`` (one reading per crop, "" where the reader gives none), ``alphabet`` (every character
it can emit) and, with ``--timing``,
``plates_per_s`` (batched where the reader batches, else one plate after another), ``batched``, latency
p50/p95 of one plate (crop to text, preprocessing included) at 1 and at 2 threads, ``peak_rss_mb`` of this
process, and ``flush_denormal`` (whether denormal floats were flushed to zero).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# LPRNet's class table (sirius-ai/LPRNet_Pytorch, data/load_data.py), the blank last
LPRNET_CHARS = list("京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新0123456789ABCDEFGHJKLMNPQRSTUVWXYZIO") + ["-"]


def read_images(path: str | Path) -> list[np.ndarray]:
    """The crops of an ``.npz`` from ``plate_lib.peers.write_images``: one flat uint8 buffer and the shapes."""
    with np.load(path, allow_pickle=False) as z:
        flat, shapes = z["pixels"], z["shapes"]
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    return [flat[e - int(np.prod(s)):e].reshape(s) for s, e in zip(shapes, ends, strict=True)]


# --- LPRNet ------------------------------------------------------------------------------------------------


def lprnet_module(n_classes: int = len(LPRNET_CHARS)):
    """LPRNet as the pretrained weights lay it out: ``backbone.<i>`` (a flat Sequential whose outputs 2, 6, 13
    and 22 feed the global context) and ``container.0`` (a 1×1 convolution over the concatenated context)."""
    import torch
    from torch import nn

    class SmallBlock(nn.Module):  # "small basic block": 1×1, 3×1, 1×3, 1×1 convolutions
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            q = c_out // 4
            self.block = nn.Sequential(nn.Conv2d(c_in, q, 1), nn.ReLU(), nn.Conv2d(q, q, (3, 1), padding=(1, 0)),
                                       nn.ReLU(), nn.Conv2d(q, q, (1, 3), padding=(0, 1)), nn.ReLU(),
                                       nn.Conv2d(q, c_out, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x)

    block = SmallBlock

    class LPRNet(nn.Module):
        # MaxPool3d over a 4-D tensor pools over (channels, height, width): a depth stride of 2 or 4 halves or
        # quarters the channels, which is how 128 channels become 64 between blocks
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(),                              # 0-2
                nn.MaxPool3d((1, 3, 3), (1, 1, 1)),                                              # 3
                block(64, 128), nn.BatchNorm2d(128), nn.ReLU(),                                  # 4-6
                nn.MaxPool3d((1, 3, 3), (2, 1, 2)),                                              # 7
                block(64, 256), nn.BatchNorm2d(256), nn.ReLU(),                                  # 8-10
                block(256, 256), nn.BatchNorm2d(256), nn.ReLU(),                                 # 11-13
                nn.MaxPool3d((1, 3, 3), (4, 1, 2)), nn.Dropout(0.5),                             # 14-15
                nn.Conv2d(64, 256, (1, 4)), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.5),     # 16-19
                nn.Conv2d(256, n_classes, (13, 1)), nn.BatchNorm2d(n_classes), nn.ReLU(),        # 20-22
            )
            self.container = nn.Sequential(nn.Conv2d(448 + n_classes, n_classes, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 3, 24, 94] -> [N, classes, 18]
            kept = []
            for i, layer in enumerate(self.backbone):
                x = layer(x.contiguous() if isinstance(layer, nn.MaxPool3d) else x)  # it takes no other layout
                if i in (2, 6, 13, 22):
                    kept.append(x)
            context = []
            for i, f in enumerate(kept):
                if i < 2:
                    f = nn.functional.avg_pool2d(f, 5, 5)
                elif i == 2:
                    f = nn.functional.avg_pool2d(f, (4, 10), (4, 2))
                context.append(f / f.pow(2).mean())  # the mean over the whole batch, as published
            return self.container(torch.cat(context, 1)).mean(2)

    return LPRNet()


def lprnet_reader(weights: str) -> tuple[Callable, Callable, str]:
    import torch

    model = lprnet_module()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()

    def prepare(img: np.ndarray) -> np.ndarray:
        if img.shape[:2] != (24, 94):
            img = cv2.resize(img, (94, 24))
        return ((img.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)

    def decode(logits: np.ndarray) -> str:
        out, prev = [], None
        for c in logits.argmax(0).tolist():
            if c != prev and c != len(LPRNET_CHARS) - 1:
                out.append(LPRNET_CHARS[c])
            prev = c
        return "".join(out)

    @torch.inference_mode()
    def read_batch(images: list[np.ndarray]) -> list[str]:
        x = torch.from_numpy(np.stack([prepare(im) for im in images]))
        return [decode(row) for row in model(x).numpy()]

    return (lambda img: read_batch([img])[0]), read_batch, "".join(LPRNET_CHARS[:-1])


# --- HyperLPR ----------------------------------------------------------------------------------------------


def hyperlpr_reader(refine: bool) -> tuple[Callable, str]:
    import hyperlpr2  # builds its LPR instance (cascades and DNNs from the package's models/) on import
    from hyperlpr2.table_chs import chars

    lpr = hyperlpr2.PR

    def read(img: np.ndarray) -> str:
        if refine:
            img = lpr.finetune(img)
        try:
            text, _ = lpr.segmentation_free_recognition(img)
        except ZeroDivisionError:  # its decoder divides by the length of an empty reading
            return ""
        return text

    return read, "".join(chars)


def hyperlpr_photo_reader() -> tuple[Callable, str]:
    import hyperlpr2
    from hyperlpr2.table_chs import chars

    def read(img: np.ndarray) -> str:
        found = hyperlpr2.HyperLPR_plate_recognition(img)  # [[plate, confidence, box], …]
        return max(found, key=lambda f: f[1])[0] if found else ""

    return read, "".join(chars)


# --- plate_lib ---------------------------------------------------------------------------------------------


def plate_lib_reader(checkpoint: str, onnx: bool, tta: bool = False) -> tuple[Callable, str]:
    sys.path.insert(0, str(ROOT))
    from plate_lib.export import OnnxModel
    from plate_lib.inference import load_model, read_plates
    from plate_lib.plates import SYMBOLS

    model, cfg = load_model(checkpoint)
    if onnx:  # predict.runtime onnx: ONNX Runtime in the model's place, threads as torch's
        model = OnnxModel(model, cfg.preprocess)
    alphabet = "".join(cfg.provinces) + "".join(SYMBOLS)
    return (lambda images: [t for t, _ in read_plates(model, cfg, images, tta=tta)]), alphabet


# --- timing ------------------------------------------------------------------------------------------------


def set_threads(n: int) -> None:
    cv2.setNumThreads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def timed(fn: Callable, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


ROUNDS = 3  # timings are the best of this many rounds (as timeit's): a round another process disturbs reads slower
ROUND_S = 1.5  # every round of every reader lasts at least this long: this VM's speed flips between two levels
# within a second or so, and a fast reader's short round could fall wholly in the fast one where a slow reader's
# long round cannot; rounds of one length sample the machine alike


def latency_ms(read_one: Callable, images: list[np.ndarray], threads: int, n: int = 200,
               rounds: int = ROUNDS, min_s: float = ROUND_S) -> dict[str, float]:
    """p50 and p95 of one plate's reading, in the round (of ``rounds``) of the lowest p50; a round reads the plates
    in turn, at least ``n`` readings and at least ``min_s`` seconds of them."""
    set_threads(threads)
    for img in images[:10]:  # warm-up
        read_one(img)

    def one_round() -> list[float]:
        times: list[float] = []
        spent = 0.0
        while len(times) < n or spent < min_s:
            t = timed(read_one, images[len(times) % len(images)])
            times.append(t * 1000)
            spent += t
        return sorted(times)

    best = min((one_round() for _ in range(rounds)), key=statistics.median)
    return {"p50": round(statistics.median(best), 3), "p95": round(best[int(0.95 * (len(best) - 1))], 3)}


def throughput(read_all: Callable, images: list[np.ndarray], threads: int, min_s: float = ROUND_S,
               rounds: int = ROUNDS) -> float:
    """Plates a second reading the set whole (``read_all``), in the fastest of ``rounds`` rounds of at least
    ``min_s`` seconds and one pass each."""
    set_threads(threads)
    read_all(images)  # warm-up
    rates = []
    for _ in range(rounds):
        done, spent = 0, 0.0
        while spent < min_s:
            spent += timed(read_all, images)
            done += len(images)
        rates.append(done / spent)
    return round(max(rates), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reader", choices=["plate_lib", "plate_lib_onnx", "plate_lib_tta", "hyperlpr", "hyperlpr_refine",
                                       "hyperlpr_photos", "lprnet"])
    ap.add_argument("--images", required=True, help=".npz of BGR crops (plate_lib.peers.write_images)")
    ap.add_argument("--out", required=True, help="JSON to write")
    ap.add_argument("--timing", action="store_true", help="also time it: throughput, latency at 1 and 2 threads")
    ap.add_argument("--threads", type=int, default=2, help="threads for reading and for the throughput")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="timing rounds; each timing is the best of them")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--lprnet-weights", default=str(ROOT.parent / "shared" / "peers" / "lprnet" / "Final_LPRNet_model.pth"))
    args = ap.parse_args()

    images = read_images(args.images)
    flush = False
    if args.reader == "lprnet":
        import torch

        flush = bool(torch.set_flush_denormal(True))  # without it, denormal activations slow its CPU speed
        read_one, read_batch, alphabet = lprnet_reader(args.lprnet_weights)
    elif args.reader == "hyperlpr_photos":
        (read_one, alphabet), read_batch = hyperlpr_photo_reader(), None
    elif args.reader.startswith("hyperlpr"):
        (read_one, alphabet), read_batch = hyperlpr_reader(refine=args.reader == "hyperlpr_refine"), None
    else:
        read_batch, alphabet = plate_lib_reader(args.checkpoint, args.reader != "plate_lib", args.reader == "plate_lib_tta")
        read_one = lambda img: read_batch([img])[0]  # noqa: E731
    set_threads(args.threads)
    # readings: batched where the reading does not depend on the batch (plate_lib), else one plate at a time
    texts = read_batch(images) if read_batch and args.reader != "lprnet" else [read_one(im) for im in images]
    out: dict = {"reader": args.reader, "n": len(images), "texts": texts, "alphabet": alphabet,
                 "flush_denormal": flush}
    if args.timing:
        if read_batch:
            out["plates_per_s"], out["batched"] = throughput(read_batch, images, args.threads, rounds=args.rounds), True
        else:
            out["plates_per_s"] = throughput(lambda ims: [read_one(im) for im in ims], images, args.threads,
                                             rounds=args.rounds)
            out["batched"] = False
        for threads in (1, 2):
            out[f"latency_ms_{threads}_thread"] = latency_ms(read_one, images, threads, rounds=args.rounds)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
