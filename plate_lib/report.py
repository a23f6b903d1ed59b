"""Report: the main job behind ``make report``: data → train → evaluate, ending with a one-line summary.

Overrides come from a profile (a YAML file of dotted keys, e.g. ``profiles/gpu.yaml``), then ``--data`` and
``--set``, through the same validation as ``cfg.yaml``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from . import config as config_mod

log = logging.getLogger(__name__)


def read_profile(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise config_mod.ConfigError(f"profile {p} not found; see profiles/ for the shipped ones")
    raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise config_mod.ConfigError(f"profile {p}: expected a mapping of dotted keys to values, e.g. training.epochs: 3")
    return raw


def report_config(config: str | None, data: str | None = None, profile: str | None = None,
                  sets: list[str] | None = None) -> config_mod.Config:
    overrides: dict[str, Any] = read_profile(profile) if profile else {}
    if data:
        overrides["data.source"] = data
    overrides.update(dict(map(config_mod.parse_override, sets or [])))
    return config_mod.load(config, overrides)


def run_report(args: argparse.Namespace) -> int:
    from .dataset import load_cfg_split
    from .inference import evaluate, load_model, pick_device
    from .train import fit

    cfg_path = args.config if Path(args.config).is_file() else None
    cfg = report_config(cfg_path, args.data, args.profile, args.set)
    run_dir = fit(cfg, progress=not args.quiet)
    device = pick_device(cfg.run.device)
    model, _ = load_model(run_dir / "best.pt", device)
    results = {}
    for name in ["test", *cfg.data.eval_sets]:
        data = load_cfg_split(cfg, "test") if name == "test" else load_cfg_split(cfg, "all", name)
        summary, rows = evaluate(model, data, list(cfg.provinces), cfg.training.eval_batch_size, device)
        rows.to_csv(run_dir / f"eval-{Path(name).stem}.csv", index=False)
        results[name] = summary
    (run_dir / "eval.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    test = results["test"]
    print(f"report: word accuracy {test['word_acc']:.4f} on {test['n']} test plates "
          f"({cfg.data.source}); run folder {run_dir}")
    return 0
