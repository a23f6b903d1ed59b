"""The measurements behind what ``plate predict`` says about an image: the shapes of plate crops (its
``not_a_crop`` limits, ``predict.crop_aspect`` and ``predict.max_crop_height``) and how well ``plate_colour``
tells yellow plates from blue ones (its ``kind`` column), and the plate length ``colours.colour_length`` gives
each colour (``predict.by_colour``).

    python benchmarks/crop_checks.py [--synthetic 2000] [--out benchmarks/crop_checks.json]

Shapes (width, height, width/height) of every crop of the real sets present (``real_sets.REAL_SETS``: the CCPD
sample cut by its corners and by its bounding boxes, the lyl8213 street crops) and of ``--synthetic`` generated
plates (all three colours; half cut from their corners as CCPD photos are, half as bounding-box crops), against
the ``predict`` section's defaults: the range found should sit inside them with a margin.

Colour: ``plate_colour`` on the lyl8213 crops against ``lyl8213-colours.csv`` (hand labels: the 173 crops seen
as yellow with dark characters on contact sheets of all 862; every other crop has light characters on a darker
background, blue, as checked by the characters' polarity), on the CCPD sample photos (``ccpd_base``: blue;
``ccpd_green``: green, which ``plate_colour`` should not call blue or yellow) and on generated plates of each
colour. Length: ``colour_length`` on the same crops, and on the CCPD sample photos cut with 75 % of loose border
(``robustness.margin_crop``: the car around the plate in the band). Prints the tables and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_sets  # noqa: E402  (benchmarks/real_sets.py: the real sets in one place)

COLOURS_CSV = real_sets.COLOURS_CSV


def _crops(name: str) -> tuple[list[np.ndarray], list, object]:
    """Every crop of a real set, its record, and the set's source."""
    src = real_sets.source(name)
    recs = [r for r in src.records("all") if not r.error]
    return [src.load(r) for r in recs], recs, src


def _ccpd_colours(recs: list) -> list[str]:
    """The CCPD sample's plate colours by subset: ``ccpd_green`` green, ``ccpd_base`` blue."""
    return ["green" if r.meta["subset"] == "ccpd_green" else "blue" for r in recs]


def _synthetic(n: int) -> list[tuple[np.ndarray, str]]:
    """Generated plates and their colours: blue, yellow and green in turn, every other one cut from its corners,
    a quarter under an adverse condition (as ``synth.adverse_fraction``)."""
    from plate_lib.synth import COLOURS, render_plate, sample_plate

    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        colour = COLOURS[i % 3]
        text = sample_plate(rng, green=colour == "green")
        out.append((render_plate(text, rng, 1.0, bool(i % 2), colour, adverse=bool(rng.random() < 0.25)), colour))
    return out


def shapes(images: list[np.ndarray]) -> dict:
    wh = np.array([im.shape[1::-1] for im in images], float)
    aspect = wh[:, 0] / wh[:, 1]
    return {"n": len(images), "width": [int(wh[:, 0].min()), int(wh[:, 0].max())],
            "height": [int(wh[:, 1].min()), int(wh[:, 1].max())],
            "aspect": [round(float(aspect.min()), 2), round(float(aspect.max()), 2)],
            "aspect_p1_p99": [round(float(v), 2) for v in np.percentile(aspect, [1, 99])]}


def confusion(truth: list[str], images: list[np.ndarray], say=None) -> dict[str, dict[str, int]]:
    """{true colour: {what ``say`` (default ``plate_colour``) says: count}}."""
    from plate_lib.colours import plate_colour

    say = say or plate_colour
    out: dict[str, Counter] = {}
    for t, im in zip(truth, images, strict=True):
        out.setdefault(t, Counter())[str(say(im))] += 1
    return {t: dict(sorted(c.items())) for t, c in sorted(out.items())}


def lengths(truth: list[str], images: list[np.ndarray]) -> dict[str, dict[str, int]]:
    """{true colour: {the plate length ``colours.colour_length`` gives (0: none): count}}: what ``predict.by_colour``
    decodes by. A blue plate given 8 or a green one given 7 would be read as a plate of the wrong length."""
    from plate_lib.colours import colour_length

    return confusion(truth, images, colour_length)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", type=int, default=2000, help="generated plates to measure (default 2000)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "crop_checks.json"))
    args = ap.parse_args()
    from plate_lib.config import PredictConfig
    from plate_lib.robustness import margin_crop

    result: dict = {"predict_defaults": PredictConfig().model_dump(mode="json"), "shapes": {}, "colour": {},
                    "length": {}}
    synthetic = _synthetic(args.synthetic)
    for name in real_sets.present():
        images, recs, src = _crops(name)
        result["shapes"][name] = shapes(images)
        if name == "lyl8213":
            labels = dict(row.values() for row in csv.DictReader(COLOURS_CSV.open(encoding="utf-8")))
            truth = [labels[r.name] for r in recs]
            result["colour"]["lyl8213 (hand labels)"] = confusion(truth, images)
            result["length"]["lyl8213 (hand labels)"] = lengths(truth, images)
        elif name == "sample_corners":
            truth = _ccpd_colours(recs)
            result["colour"]["CCPD sample, corners"] = confusion(truth, images)
            result["length"]["CCPD sample, corners"] = lengths(truth, images)
            # the photos cut with 75 % of loose border: the car around the plate
            loose = [margin_crop(src, r, 0.75) for r in recs]
            result["length"]["CCPD sample, 75 % loose"] = lengths(truth, loose)
        elif name == "sample_bbox":
            result["length"]["CCPD sample, bounding box"] = lengths(_ccpd_colours(recs), images)
    result["shapes"]["synthetic"] = shapes([im for im, _ in synthetic])
    result["colour"]["synthetic"] = confusion([c for _, c in synthetic], [im for im, _ in synthetic])
    result["length"]["synthetic"] = lengths([c for _, c in synthetic], [im for im, _ in synthetic])
    everything = [s for s in result["shapes"].values()]
    result["range"] = {"aspect": [min(s["aspect"][0] for s in everything), max(s["aspect"][1] for s in everything)],
                       "height": max(s["height"][1] for s in everything)}

    print(f"{'set':18}{'n':>6}{'width':>12}{'height':>10}{'width/height':>16}{'(p1-p99)':>14}")
    for name, s in result["shapes"].items():
        (w0, w1), (h0, h1), (a0, a1), (p1, p99) = s["width"], s["height"], s["aspect"], s["aspect_p1_p99"]
        print(f"{name:18}{s['n']:6}{f'{w0}-{w1}':>12}{f'{h0}-{h1}':>10}{f'{a0:.2f}-{a1:.2f}':>16}{f'{p1:.2f}-{p99:.2f}':>14}")
    d = result["predict_defaults"]
    print(f"all: width/height {result['range']['aspect']}, height <= {result['range']['height']}; predict.crop_aspect "
          f"{d['crop_aspect']}, predict.max_crop_height {d['max_crop_height']}")
    for name, table in result["colour"].items():
        print(f"plate_colour on {name}: " + "; ".join(f"{t} -> {dict(c)}" for t, c in table.items()))
    for name, table in result["length"].items():
        print(f"colour_length on {name}: " + "; ".join(f"{t} -> {dict(c)}" for t, c in table.items()))
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
