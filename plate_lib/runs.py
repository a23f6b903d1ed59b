"""Runs: the run folder's bookkeeping. CSV rows, the run log, the code and data a run was made from, whether a
finished run can be reused, and where an interrupted run resumes.

A run folder ``<training.out_dir>/<run.name>/`` holds ``config.yaml`` (resolved), ``env.json`` (versions),
``metrics.csv`` (one row per epoch; the same bytes for the same seed on the CPU), ``timings.csv``, ``train.log``,
``best.pt``, ``last.pt``, ``resume.pt`` (mid-epoch) and ``summary.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch
import yaml

from .checkpoints import CheckpointError, check_fits, read_checkpoint
from .config import Config, ConfigError, config_changes, from_dict, read_yaml
from .dataset import open_cfg_source
from .files import atomic_write, size_text, some
from .sources import DataError

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_word_acc", "val_char_acc", "val_cer",
                 "val_province_acc"]
TIMING_FIELDS = ["epoch", "train_plates_per_s", "epoch_s"]
NOT_TRAINING = ("predict", "run.keep_replaced")  # config that changes no trained weight: a run is not compared by it
def versions() -> dict:
    import cv2

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def append_row(path: Path, row: dict, fields: list[str]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in fields})


def keep_rows(path: Path, epochs: int, fields: list[str]) -> None:
    """Keep the whole rows of epochs 1..``epochs``: an interrupted run may have written more, or half a row."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values() and None not in r
                and (r.get("epoch") or "").isdigit() and int(r["epoch"]) <= epochs]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")  # a run of older code: timings dropped
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def code_version() -> str:
    """A hash of the package's source files: a finished run is reused only by the code that made it."""
    h = hashlib.sha1()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def data_fingerprint(cfg: Config) -> list[str]:
    """The content fingerprint of every training source (``"missing"`` for one not there yet)."""
    out = []
    for path, crop in [(cfg.data.source, None), *((s.path, s.ccpd_crop) for s in cfg.data.train_sources)]:
        path = cfg.data.synthetic_path if path == "synthetic" else path
        try:
            src = open_cfg_source(cfg, path, crop)
            out.append(f"{src.kind}:{src.fingerprint()}")
        except DataError:
            out.append("missing")
    return out


def run_inputs(cfg: Config) -> dict:
    return {"code_version": code_version(), "data": data_fingerprint(cfg)}


def config_text(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False)


def finished_run_differs(cfg: Config, run_dir: Path, check_code: bool = True) -> str | None:
    """Why ``run_dir`` cannot stand for a run of ``cfg`` (None: a finished run of the same config, code and data).

    ``check_code=False`` lets a run made by other plate_lib code stand (benchmarks/accuracy.py keeps its long
    runs across unrelated code changes); the config, the data and the run's files are still checked."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        stored = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return "no finished run there"
    if not (isinstance(summary, dict) and isinstance(stored, dict)):
        return "its summary.json or config.yaml is damaged"
    # a key added to the config since the run was made counts at its default (e.g. data.max_file_mb); a key since
    # removed or renamed fails validation, and the stored config is compared as it is, so the run differs
    with suppress(ConfigError):
        stored = from_dict(stored, str(run_dir / "config.yaml")).to_dict()
    changed = config_changes(stored, cfg.to_dict(), NOT_TRAINING)
    if changed:
        return f"the config differs ({', '.join(changed[:5])})"
    now = run_inputs(cfg)
    code = (("code_version", "the plate_lib code"),) if check_code else ()
    for key, what in (*code, ("data", "the training data")):
        if summary.get(key) != now[key]:
            return f"{what} changed"
    missing = [f for f in ("best.pt", "last.pt", "metrics.csv") if not (run_dir / f).is_file()]
    return f"{', '.join(missing)} missing" if missing else None


@contextmanager
def run_log(path: Path, append: bool, enabled: bool = True) -> Iterator[None]:
    """Copy plate_lib's log (INFO and up) to ``path`` for the duration: the run's own record, skipped samples included."""
    if not enabled:
        yield
        return
    pkg = logging.getLogger("plate_lib")
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    level = pkg.level
    if pkg.getEffectiveLevel() > logging.INFO:
        pkg.setLevel(logging.INFO)
    pkg.addHandler(handler)
    try:
        yield
    finally:
        pkg.removeHandler(handler)
        handler.close()
        pkg.setLevel(level)


# --- the run folder: start afresh or resume, data, checkpoints ----------------------------------------------------

RUN_FILES = ("metrics.csv", "timings.csv", "resume.pt", "last.pt", "best.pt", "summary.json")


def position(ck: dict) -> tuple[int, int]:
    """(epoch to run, its batches done): last.pt stores the epoch it finished, resume.pt the one in progress."""
    return (ck["epoch"], ck["batch"]) if "batch" in ck else (ck["epoch"] + 1, 0)


def resume_point(run_dir: Path, cfg: Config) -> tuple[Path, dict] | None:
    """The later of ``last.pt`` and ``resume.pt``; a truncated or foreign one is a ``CheckpointError``."""
    found = []
    for name in ("last.pt", "resume.pt"):
        path = run_dir / name
        if path.is_file():
            ck = read_checkpoint(path, fix=f"delete {path} to resume from the other checkpoint (last.pt or resume.pt) "
                                          "if there is one, or train without --resume to start afresh")
            check_fits(ck, cfg, f"{path} (--resume)")
            if not {"optimizer", "torch_rng", "aug_rng", "step", "epoch"} <= set(ck):
                raise CheckpointError(f"{path} holds weights but no training state to resume from; "
                                      "train without --resume, or use training.init_from to start from its weights")
            found.append((path, ck))
    return max(found, key=lambda f: position(f[1]), default=None)


RESUME_MAY_CHANGE = ("run.name", "run.device", "training.init_from", "training.epochs", "training.max_steps",
                     "training.threads",
                     "training.num_workers", "training.eval_batch_size", "training.out_dir", "training.keep_epochs",
                     "data.cache_dir", "data.eval_sets", "synth.workers", *NOT_TRAINING)
"""What ``--resume`` lets differ from the run it continues: where and how fast it runs, and how long (more epochs
extend it, logged), and where its first weights came from (``training.init_from``: a resume replaces them with the
checkpoint's, and a fresh start that fine-tuned from the run it replaced stored the path it was kept aside at). Any
other key would make one run of two configs, its ``config.yaml`` telling only the last."""


def check_resume_config(ck: dict, cfg: Config, path: Path) -> None:
    """A ``ConfigError`` naming the keys of ``cfg`` that differ from those ``path`` was trained with, beyond
    ``RESUME_MAY_CHANGE``; a longer or shorter run (``training.epochs``, ``max_steps``) is logged."""
    stored = ck["config"]
    with suppress(ConfigError):  # a key added since counts at its default, as for a finished run
        stored = from_dict(stored, f"{path} (stored config)").to_dict()
    changed = config_changes(stored, cfg.to_dict(), RESUME_MAY_CHANGE)
    if changed:
        old = {k: (stored.get(k.split(".")[0]) or {}).get(k.split(".", 1)[-1]) if "." in k else stored.get(k)
               for k in changed}
        raise ConfigError(f"--resume: {path} was trained with {', '.join(f'{k}={v!r}' for k, v in old.items())}; "
                          f"this config changes {', '.join(changed)}. Resume with the config it was trained with, or "
                          "train without --resume (a new run; the old one is kept aside) or under another run.name")
    for key in ("epochs", "max_steps"):
        if stored["training"].get(key) != getattr(cfg.training, key):
            log.warning("--resume: training.%s %s → %s (the run is extended or cut; its learning-rate schedule "
                        "follows the new length from here%s)", key, stored["training"].get(key),
                        getattr(cfg.training, key), "; a run max_steps stopped inside an epoch goes on from the next "
                        "epoch, the rest of that one not drawn" if key == "max_steps" else "")


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds trained work: a checkpoint or an epoch's metrics."""
    return run_dir.is_dir() and (any(run_dir.glob("*.pt")) or (run_dir / "metrics.csv").is_file())


def describe_run(run_dir: Path) -> str:
    """What a run folder holds, for the log: finished or interrupted, after how many epochs."""
    try:
        with (run_dir / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        rows = []
    done = f"{len(rows)} epoch(s)" + (f", last val word acc {rows[-1].get('val_word_acc')}" if rows else "")
    state = "a finished run" if (run_dir / "summary.json").is_file() else "an interrupted run"
    return f"{state} ({done})"


def kept_runs(run_dir: Path) -> list[Path]:
    """The earlier runs ``keep_aside`` kept of the run ``run_dir``: ``<run_dir>.<n>``, in the order of ``n``."""
    prefix = run_dir.name + "."
    if not run_dir.parent.is_dir():
        return []
    kept = [p for p in run_dir.parent.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]
    return sorted(kept, key=lambda p: int(p.name[len(prefix):]))


def keep_aside(run_dir: Path) -> Path:
    """Move the run folder ``run_dir`` out of the way, whole, to ``<run_dir>.<n>`` (the next free number): a fresh
    start in its place never deletes a run's work. Returns where it went."""
    kept = kept_runs(run_dir)
    dest = run_dir.with_name(f"{run_dir.name}.{int(kept[-1].name.rsplit('.', 1)[1]) + 1 if kept else 1}")
    run_dir.rename(dest)
    return dest


def kept_note(run_dir: Path) -> str:
    """How many earlier runs of ``run_dir`` are kept and the disk they take, for the log: nothing prunes them."""
    kept = kept_runs(run_dir)
    size = 0
    for top, _, files in (entry for k in kept for entry in os.walk(k)):
        for f in files:
            with suppress(OSError):  # a file gone meanwhile, a dangling link: not counted
                size += os.path.getsize(os.path.join(top, f))
    return (f"{len(kept)} earlier run(s) of this name are kept beside it ({size_text(size)}: "
            f"{some([k.name for k in kept], 5)}); delete those you no longer need")


def restore_run(kept: Path, run_dir: Path) -> None:
    """Undo ``keep_aside`` after a start that failed before writing a checkpoint: what that start left in
    ``run_dir`` (its config.yaml, env.json, train.log) is removed, and the kept run goes back in its place."""
    if run_dir.is_dir():
        for leftover in run_dir.iterdir():
            if leftover.is_file():
                leftover.unlink()
        with suppress(OSError):
            run_dir.rmdir()
    if not run_dir.exists():
        kept.rename(run_dir)


def was_throwaway(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` was a throwaway one (its ``config.yaml`` says ``run.keep_replaced: false``):
    only such a run may be deleted when another run of its name, itself a throwaway, finishes."""
    try:
        raw = read_yaml(run_dir / "config.yaml")
    except (OSError, ConfigError):
        return False
    run = raw.get("run") if isinstance(raw, dict) else None
    return isinstance(run, dict) and run.get("keep_replaced") is False


def follow_init_from(cfg: Config, run_dir: Path, kept: Path, quiet: bool = False) -> Config:
    """``cfg`` with ``training.init_from`` pointing into ``kept`` where it pointed into ``run_dir`` (fine-tuning
    from the run being replaced: its checkpoint has moved with it); said in the log unless ``quiet``."""
    init = cfg.training.init_from
    if not init:
        return cfg
    try:
        rel = Path(init).resolve().relative_to(run_dir.resolve())
    except ValueError:
        return cfg
    moved = str(kept / rel)
    if not quiet:
        log.warning("training.init_from %s is now %s (the run it came from was kept aside)", init, moved)
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={"init_from": moved})})


def start(run_dir: Path, cfg: Config, resume: bool, main: bool) -> tuple[Path, dict] | tuple[None, None]:
    """The checkpoint to resume from, or (None, None) for a fresh start (``fit`` has kept the last run's folder aside
    by then; what is left of a failed attempt is cleared). ``--resume`` with nothing to resume, or with a config
    that changes what the run was trained with (``check_resume_config``), is an error."""
    path, ck = (resume_point(run_dir, cfg) if resume else None) or (None, None)
    if resume and ck is None:
        raise ConfigError(f"--resume: {run_dir} holds no last.pt or resume.pt to continue from (is run.name "
                          f"{cfg.run.name!r} the run's name?); train without --resume to start afresh")
    if ck is not None:
        check_resume_config(ck, cfg, path)
    if main:
        # a fresh start finds no checkpoint here (fit moved any run aside, epoch<N>.pt included): only a failed
        # attempt's leftovers are cleared
        for name in RUN_FILES if ck is None else ("summary.json",):
            (run_dir / name).unlink(missing_ok=True)
        if ck is not None:  # rows an interrupted run wrote after its checkpoint are written again
            for name, fields in (("metrics.csv", METRIC_FIELDS), ("timings.csv", TIMING_FIELDS)):
                keep_rows(run_dir / name, position(ck)[0], fields)
    return path, ck
