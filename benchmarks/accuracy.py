"""Accuracy of seed_crnn beside the compact models, each trained on the same data by the same recipe.

    python benchmarks/accuracy.py [--models seed_crnn small_crnn small_crnn_lite] [--epochs 5]
                                  [--size 48x144 [seed_crnn=128x400]] [--repeats small_crnn=3] [--reuse]
                                  [--real ../shared/data/ccpd2019-sample]

Each model trains with ``plate train`` on the synthetic zip (``data.synthetic_path``; generated on first
use), for the same epochs and at the same input size, with its own optimiser settings where a profile has them
(``profiles/seed.yaml`` for seed_crnn: batch 96, lr 5e-4), into ``runs/acc-<model>``. Each is then read by
``plate evaluate`` on the synthetic test split and, when present, on every photo of the real CCPD sample.
``--repeats NAME=K`` trains NAME K times (``run.seed`` 0…K-1) to show the spread between runs. Every run is
paired plate by plate with seed_crnn's first run (``metrics.paired_comparison``: the plates only one of the
two got wrong, and the exact McNemar p-value). Writes ``benchmarks/accuracy.json`` and prints a table.

The input size is common to all models so that the data, not the resolution, is what is held fixed; the
default 48×144 is the compact models' own. seed_crnn's own 128×400 trains at 2.8 plates/s on a 2-core CPU
(100 minutes an epoch); on a GPU, ``--size 48x144 seed_crnn=128x400`` trains the seed at its own resolution beside
the compact models at theirs (benchmarks/gpu.sh). A run at another size than 48×144 is named for it
(``runs/acc-seed_crnn-128x400``).
``--reuse`` keeps a finished run of the same config and data (one made before an unrelated code change
included), instead of training again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plate_lib.metrics import paired_comparison  # noqa: E402

PROFILES = {"seed_crnn": "profiles/seed.yaml"}  # a model's own optimiser settings
EVAL_KEYS = ("n", "word_acc", "char_acc", "province_acc", "cer")
BASELINE = "seed_crnn"


def plate(*args: str) -> str:
    """Run the ``plate`` command line in the repository root; its stdout (a failure stops the benchmark)."""
    done = subprocess.run([sys.executable, "-m", "plate_lib", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"`plate {' '.join(args)}` failed with exit code {done.returncode}; see its message above")
    return done.stdout


DEFAULT_SIZE = (48, 144)


def recipe(name: str, seed: int, epochs: int, size: tuple[int, int]) -> tuple[list[str], list[str]]:
    """The profiles and ``KEY=VALUE`` overrides that train ``name``: its profile, its size and the shared epochs."""
    tag = "" if size == DEFAULT_SIZE else f"-{size[0]}x{size[1]}"
    sets = {"model.name": name, "preprocess.height": size[0], "preprocess.width": size[1],
            "training.epochs": epochs, "run.seed": seed,
            "run.name": f"acc-{name}{tag}" + (f"-s{seed}" if seed else "")}
    return [PROFILES[name]] if name in PROFILES else [], [f"{k}={v}" for k, v in sets.items()]


def finished(profiles: list[str], sets: list[str]) -> tuple[Path, bool]:
    """The run folder this recipe trains into, and whether a finished run of exactly its config and data is there
    (made by this plate_lib code or another: ``runs.finished_run_differs(check_code=False)``)."""
    from plate_lib import config as config_mod
    from plate_lib.runs import finished_run_differs

    with contextlib.chdir(ROOT):  # profiles and the config's paths are relative to the repository, as for `plate`
        cfg = config_mod.load(Path("cfg.yaml"), config_mod.collect_overrides(None, profiles, sets))
        run_dir = Path(cfg.training.out_dir) / cfg.run.name
        return ROOT / run_dir, finished_run_differs(cfg, run_dir, check_code=False) is None


def evaluate(run_dir: Path, data: str, split: str, tag: str) -> tuple[dict, pd.DataFrame]:
    """``plate evaluate`` of the run's best.pt: the summary, and one row per plate (kept in the run folder)."""
    rows = run_dir / f"eval-{tag}.csv"
    out = json.loads(plate("evaluate", "--quiet", "--checkpoint", str(run_dir / "best.pt"), "--data", data,
                           "--split", split, "--out", str(rows)))
    return {k: out[k] for k in EVAL_KEYS if k in out}, pd.read_csv(rows, usecols=["name", "correct"])


def paired(rows: pd.DataFrame, base: pd.DataFrame) -> dict:
    """This run against the baseline's, plate by plate (a = this run, b = the baseline)."""
    both = rows.merge(base, on="name", suffixes=("", "_base"), validate="one_to_one")
    out = paired_comparison(both["correct"].tolist(), both["correct_base"].tolist())
    return {"only_this_wrong": out["only_a_wrong"], f"only_{BASELINE}_wrong": out["only_b_wrong"],
            "p_value": float(f"{out['p_value']:.2g}")}


def parse_sizes(items: list[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
    """``--size``: the common HEIGHTxWIDTH, then NAME=HEIGHTxWIDTH for a model at its own size."""
    common, own = DEFAULT_SIZE, {}
    for item in items:
        name, _, value = item.rpartition("=")
        try:
            size = tuple(int(v) for v in value.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2:
            sys.exit(f"--size {item!r}: expected HEIGHTxWIDTH or NAME=HEIGHTxWIDTH, e.g. 48x144 seed_crnn=128x400")
        if name:
            own[name] = size
        else:
            common = size
    return common, own


def parse_repeats(items: list[str]) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (item.split("=") for item in items)}
    except ValueError:
        sys.exit(f"--repeats {' '.join(items)}: expected NAME=K pairs, e.g. small_crnn=3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[BASELINE, "small_crnn", "small_crnn_lite"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", nargs="+", default=["48x144"],
                    help="input HEIGHTxWIDTH for every model, and NAME=HEIGHTxWIDTH for a model at its own")
    ap.add_argument("--repeats", nargs="*", default=[], help="NAME=K: train NAME K times (run.seed 0…K-1)")
    ap.add_argument("--real", default="../shared/data/ccpd2019-sample",
                    help="a folder of real CCPD photos or crops, read whole (relative to the repository; "
                         "skipped when absent)")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs of the same config")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "accuracy.json"))
    args = ap.parse_args()
    size, own_size = parse_sizes(args.size)
    repeats = parse_repeats(args.repeats)

    from plate_lib.config import load

    sets = {"synthetic_test": (str(load(ROOT / "cfg.yaml").data.synthetic_path), "test")}
    if (ROOT / args.real).is_dir():
        sets["real"] = (args.real, "all")
    else:
        print(f"{args.real} is not there: evaluating on the synthetic test split only", file=sys.stderr)
    models: dict[str, list[dict]] = {}
    base_rows: dict[str, pd.DataFrame] = {}
    for name in args.models:
        for seed in range(repeats.get(name, 1)):
            profiles, overrides = recipe(name, seed, args.epochs, own_size.get(name, size))
            opts = [a for p in profiles for a in ("--profile", p)] + [a for o in overrides for a in ("--set", o)]
            run_dir, done = finished(profiles, overrides)
            if not (args.reuse and done):
                plate("train", "--quiet", *opts)
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            run = {"seed": seed, "command": "plate train " + " ".join(opts),
                   "best_val_word_acc": summary["best_val_word_acc"]}
            for tag, (data, split) in sets.items():
                run[tag], rows = evaluate(run_dir, data, split, tag)
                if name == BASELINE and seed == 0:
                    base_rows[tag] = rows
                elif tag in base_rows:
                    run[tag][f"vs_{BASELINE}"] = paired(rows, base_rows[tag])
            models.setdefault(name, []).append(run)
            print(f"evaluated {run_dir.name}", file=sys.stderr)

    out = {"machine": f"{platform.node()} {platform.machine()}", "cpus": os.cpu_count(),
           "recipe": {"epochs": args.epochs, "size": list(size), "sets": sets,
                      **({"own_size": {k: list(v) for k, v in own_size.items()}} if own_size else {})},
           "models": models}
    Path(args.out).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(models))
    print(f"wrote {args.out}")


def table(models: dict[str, list[dict]]) -> str:
    """One line per run: word and char accuracy per set, and the paired split against the baseline."""
    lines = [f"{'run':22}{'synthetic word':>15}{'char':>7}{'real word':>11}{'char':>7}"
             f"{'only this / only ' + BASELINE + ' wrong (p)':>40}"]
    for name, runs in models.items():
        for run in runs:
            s, r = run["synthetic_test"], run.get("real", {})
            cells = "".join(f"{v:>{w}.3f}" if v is not None else f"{'-':>{w}}" for v, w in
                            zip((s["word_acc"], s["char_acc"], r.get("word_acc"), r.get("char_acc")),
                                (15, 7, 11, 7), strict=True))
            vs = [run[t].get(f"vs_{BASELINE}") for t in ("synthetic_test", "real") if t in run]
            split = "  ".join(f"{v['only_this_wrong']}/{v[f'only_{BASELINE}_wrong']} (p {v['p_value']:.2g})"
                              for v in vs if v)
            label = f"{name} s{run['seed']}" if run["seed"] else name
            lines.append(f"{label:22}{cells}{split:>40}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
