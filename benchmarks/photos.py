"""Whole photos: the plate found by its colour (``rectify.photo_boxes``) and read (``reading.read_photos``), with
no annotation, as ``plate predict`` reads a photo.

    python benchmarks/photos.py [--checkpoint models/plate_default.pt] [--splits train val] [--out PATH]

Reads the CCPD sample's photos (``real_sets.SAMPLE``, 720×1160, one car each) as stored, their annotation
ignored, and counts: plates read right; the photos where the box read overlaps the annotated bounding box (IoU
at least 0.5); of the readings at or above cfg.yaml's ``predict.min_confidence`` (``ok`` rows), how many are
wrong. Then the same photos with the plate painted out (its annotated corners, grown by a fifth, filled by
``cv2.inpaint`` from the car around it): readings ``ok`` there are plates read where there is none. And the time
a photo (finding and reading, one photo at a time, at 2 threads). ``--hyperlpr``: the same photos read by
HyperLPR's whole pipeline too (its cascade detector, refinement and recogniser, the most confident plate kept;
``make peers`` builds its environment). Writes JSON (without ``--out``:
``benchmarks/photos.json`` for the train and val splits, the choice of ``rectify.PHOTO_*``;
``benchmarks/photos-<splits>.json`` for others). The reader read the train split's photos (cut by their corners
and boxes) in training; the val and test splits are held out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_sets import SAMPLE, default_out, relative  # noqa: E402


def painted_out(photo: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """``photo`` with the plate inside ``corners`` (grown by a fifth about their centre) filled from around it."""
    centre = corners.mean(0)
    grown = (centre + (corners - centre) * 1.2).round().astype(np.int32)
    mask = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, grown, 255)
    return cv2.inpaint(photo, mask, 5, cv2.INPAINT_TELEA)


def repainted(photo: np.ndarray, corners: np.ndarray, colour: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``photo`` with its plate (inside ``corners``, CCPD's order: bottom-right, bottom-left, top-left, top-right)
    replaced by a generated clean plate of ``colour`` (its text drawn as the generator draws plates, every province
    equally often), warped onto the corners, the photo then saved as a JPEG of quality 85 and read back."""
    from plate_lib.synth import render_plate, sample_plate

    text = sample_plate(rng, green=colour == "green", province_flatten=1.0)
    plate = render_plate(text, rng, degrade=0.0, rectified=True, colour=colour)
    h, w = plate.shape[:2]
    m = cv2.getPerspectiveTransform(np.float32([[w - 1, h - 1], [0, h - 1], [0, 0], [w - 1, 0]]),
                                    corners.astype(np.float32))
    size = photo.shape[1::-1]
    inside = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, size) > 127
    out = photo.copy()
    out[inside] = cv2.warpPerspective(plate, m, size, flags=cv2.INTER_AREA)[inside]
    return cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR), text


def load_photo(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The CCPD photo ``name`` under ``root`` as stored (reduced where large), its annotated corners and its
    annotated bounding box, both in the photo's pixels as decoded."""
    from plate_lib.images import decode_photo
    from plate_lib.sources import ccpd_bbox, parse_ccpd_name

    stem = Path(name).stem
    photo, scale = decode_photo((root / name).read_bytes(), name)
    box = tuple(round(v * s) for v, s in zip(ccpd_bbox(stem), (*scale, *scale), strict=True))
    return photo, parse_ccpd_name(stem)[1] * np.float32(scale), box


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix, iy = max(0, min(a[2], b[2]) - max(a[0], b[0])), max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"])
    ap.add_argument("--out")
    ap.add_argument("--hyperlpr", action="store_true", help="also read the photos with HyperLPR's whole pipeline "
                                                              "(detector and recogniser; make peers installs it)")
    ap.add_argument("--repaint", nargs="*", default=[], choices=["blue", "yellow", "green"],
                    help="also read the photos with their plate replaced by a generated one of each colour given")
    args = ap.parse_args()
    out_path = Path(args.out) if args.out else default_out("photos", args.splits, kept=("train", "val"))

    import torch

    from plate_lib.config import load as load_config
    from plate_lib.graph import open_reader
    from plate_lib.peers import run_reader
    from plate_lib.reading import read_photos
    from plate_lib.sources import open_source

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, cfg, device = open_reader(args.checkpoint, "cpu")
    settings = load_config(ROOT / "cfg.yaml").predict
    how = (device, settings.rectify_below, settings.tta)  # as plate predict reads

    def read_photo(photo: np.ndarray) -> tuple[str, float, tuple[int, int, int, int] | None]:
        return read_photos(model, cfg, [photo], *how, by_colour=settings.by_colour)[0]

    root = ROOT / SAMPLE
    if not root.is_dir():
        sys.exit(f"{root} is not here: nothing to measure")
    src = open_source(root)
    result: dict = {"checkpoint": relative(args.checkpoint), "splits": args.splits,
                    "min_confidence": settings.min_confidence, "by_split": {}}
    for split in args.splits:
        recs = [r for r in src.records(split) if not r.error]
        right = found = ok = ok_wrong = blank_ok = 0
        seconds, misses = 0.0, []
        for r in recs:
            photo, corners, box = load_photo(root, r.name)
            t0 = time.perf_counter()
            plate, conf, where = read_photo(photo)
            seconds += time.perf_counter() - t0
            right += plate == r.text
            found += where is not None and iou(where, box) >= 0.5
            if conf >= settings.min_confidence:
                ok += 1
                ok_wrong += plate != r.text
            if plate != r.text:
                misses.append({"name": Path(r.name).name, "true": r.text, "pred": plate, "confidence": round(conf, 4)})
            blank_ok += read_photo(painted_out(photo, corners))[1] >= settings.min_confidence
        n = len(recs)
        row = {"n": n, "word_acc": round(right / n, 4), "found": round(found / n, 4), "ok_rows": ok,
               "ok_wrong": ok_wrong, "painted_out_ok": blank_ok, "ms_per_photo": round(1e3 * seconds / n, 1),
               "misses": misses}
        print(f"{split:5} n {n:4}  read {right / n:.3f}  found {found / n:.3f}  ok rows {ok} ({ok_wrong} wrong)  "
              f"painted out: {blank_ok} ok  {row['ms_per_photo']} ms a photo", flush=True)
        if args.hyperlpr:  # the same photos, as decoded here, in a process of its own
            photos = [load_photo(root, r.name)[0] for r in recs]
            t0 = time.perf_counter()
            texts = run_reader("hyperlpr_photos", photos)["texts"]
            row["hyperlpr"] = {"word_acc": round(sum(t == r.text for t, r in zip(texts, recs, strict=True)) / n, 4),
                               "s_per_photo_with_start_up": round((time.perf_counter() - t0) / n, 3)}
            print(f"{'':5} HyperLPR's whole pipeline: read {row['hyperlpr']['word_acc']:.3f}", flush=True)
        for colour in args.repaint:
            row.setdefault("repainted", {})[colour] = read_repainted(read_photo, model, cfg, how, settings.by_colour,
                                                                     root, recs, colour)
            print(f"{'':5} repainted {colour}: " + "  ".join(f"{k} {v}" for k, v in row["repainted"][colour].items()),
                  flush=True)
        result["by_split"][split] = row
    out_path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {relative(str(out_path))}")


def read_repainted(read_photo, model, cfg, how: tuple, by_colour: bool, root: Path, recs: list, colour: str) -> dict:
    """Plates read right in the photos of ``recs`` with their plate ``repainted`` in ``colour``, found
    (``read_photo``: ``read_photos`` as plate predict reads) and cut by the annotated box (``read_plates`` read
    ``how``: what finding costs), and boxes found."""
    from plate_lib.reading import read_plates

    rng = np.random.default_rng(0)
    right = cut_right = found = 0
    for r in recs:
        photo, corners, box = load_photo(root, r.name)
        photo, text = repainted(photo, corners, colour, rng)
        x1, y1, x2, y2 = box
        plate, _, where = read_photo(photo)
        ((cut, _),) = read_plates(model, cfg, [photo[max(0, y1):y2, max(0, x1):x2]], *how, by_colour=by_colour)
        right, cut_right = right + (plate == text), cut_right + (cut == text)
        found += where is not None and iou(where, box) >= 0.5
    n = len(recs)
    return {"word_acc": round(right / n, 4), "found": round(found / n, 4), "box_cut_word_acc": round(cut_right / n, 4)}


if __name__ == "__main__":
    main()
