"""Is a province prior correction at inference worth it? Measured, not assumed.

    python benchmarks/province_prior.py [CHECKPOINT] [--splits val] [--taus 0 0.5 1] [--target ccpd|uniform]
                                        [--synthetic ZIP]

The generator draws provinces by ``synth.home_share`` and ``synth.province_flatten`` (皖 a fifth, the other 30
equally often), so the model's province head learns that prior. A deployment in one region sees another one:
CCPD's photos are 88 % 皖. Logit adjustment adds ``tau * log(target prior / training prior)`` to the province
logits before the argmax (Menon et al. 2021). This script reads the real sets' ``--splits`` with the checkpoint
and prints, per set and tau, province and word accuracy (and the macro province accuracy: the mean over
provinces) with the target prior taken as CCPD's province counts (``synth.POSITION_COUNTS``) or, ``--target
uniform``, every province equally likely. ``--synthetic ZIP`` also reads a synthetic zip's test split: to choose
on, a fresh province-balanced draw (``plate generate --n 10 --n-test 3000 --seed 11 --out …``), not the
shipped model's own synthetic test. Nothing is changed in plate_lib by it: it tells whether a correction should be.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def priors(cfg) -> tuple[np.ndarray, np.ndarray]:
    """(training prior, CCPD prior) over ``cfg.provinces``."""
    from plate_lib.synth import POSITION_COUNTS, _table

    chars, cdf = _table(0, 1.0 - cfg.synth.province_flatten, cfg.synth.home_share)
    p = np.diff(np.concatenate([[0.0], cdf]))
    train = np.array([p[chars.index(c)] for c in cfg.provinces])
    ccpd = np.array([POSITION_COUNTS[0].get(c, 0) + 1 for c in cfg.provinces], float)
    return train, ccpd / ccpd.sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default=str(ROOT / "models" / "plate_default.pt"))
    ap.add_argument("--splits", nargs="+", default=["val"])
    ap.add_argument("--taus", nargs="+", type=float, default=[0.0, 0.5, 1.0])
    ap.add_argument("--target", choices=["ccpd", "uniform"], default="ccpd", help="the prior the logits move towards")
    ap.add_argument("--synthetic", help="a synthetic zip whose test split is read too (a balanced draw)")
    args = ap.parse_args()

    import torch
    from real_sets import load, load_source, present

    from plate_lib.inference import decode_logits, load_model
    from plate_lib.metrics import summarize
    from plate_lib.preprocess import letterbox
    from plate_lib.sources import open_source

    model, cfg = load_model(args.checkpoint)
    train, ccpd = priors(cfg)
    target = ccpd if args.target == "ccpd" else np.full(len(train), 1 / len(train))
    shift = torch.from_numpy(np.log(target / train)).float()
    pre = cfg.preprocess

    sets = {name: (lambda name=name: load(name, tuple(args.splits))) for name in present()}
    if args.synthetic:
        sets[Path(args.synthetic).name] = lambda: load_source(open_source(args.synthetic), ("test",))
    print(f"target prior: {args.target}")
    print(f"{'set':20}{'tau':>5}{'province acc':>14}{'macro':>7}{'word acc':>10}{'non-皖 province':>17}   n")
    for name, read_set in sets.items():
        images, texts, _ = read_set()
        x = torch.from_numpy(np.stack([letterbox(im, pre.height, pre.width, pre.grayscale) for im in images]))
        with torch.inference_mode():
            prov, ctc = model(x.permute(0, 3, 1, 2).float().div(255))
        for tau in args.taus:
            preds, _ = decode_logits(prov + tau * shift, ctc, list(cfg.provinces))
            m = summarize(preds, texts)
            print(f"{name:20}{tau:>5.2f}{m['province_acc']:>14.3f}{m['province_acc_macro']:>7.3f}{m['word_acc']:>10.3f}"
                  f"{m['province_acc_non_wan']:>17.3f}   {m['n']}")


if __name__ == "__main__":
    main()
