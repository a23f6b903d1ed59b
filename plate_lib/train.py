"""Train: the fit loop. Schedule, step, evaluate, checkpoint, log; AMP and channels-last are switches.

``fit`` writes a run folder (see ``runs``): ``best.pt`` by validation word accuracy (ties: lower loss),
``last.pt`` at each epoch's end (and ``epoch<N>.pt``, its weights alone, with ``training.keep_epochs``),
``resume.pt`` mid-epoch (every ``CHECKPOINT_SECONDS``; removed at each epoch's end), one ``metrics.csv`` row
per epoch. ``resume=True`` continues from the later of ``last.pt`` and ``resume.pt``, skipping the batches already
done, and reaches the weights an uninterrupted run would. ``reuse=True`` returns a finished run of the same
config, code and data instead of training again. Under ``torchrun`` it trains with DistributedDataParallel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import metrics
from .augment import augment_batch
from .checkpoints import (
    CheckpointError,
    check_fits,
    load_weights,
    model_spec,
    read_checkpoint,
    save_checkpoint,
)
from .config import Config, ConfigError
from .dataset import (
    PlateBatches,
    SplitData,
    batch_loader,
    load_training_set,
    load_validation_set,
    require_plates,
    resolve_source,
    unused_label_fixes,
)
from .inference import decode_logits, pick_device
from .models import build_model, count_params
from .runs import (
    METRIC_FIELDS,
    TIMING_FIELDS,
    append_row,
    config_text,
    describe_run,
    finished_run_differs,
    follow_init_from,
    holds_run,
    keep_aside,
    kept_note,
    kept_runs,
    position,
    restore_run,
    run_inputs,
    run_log,
    start,
    versions,
    was_throwaway,
)
from .sources import DataError

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 60.0  # mid-epoch resume.pt at most this often (a crash loses at most a minute)
CHECKPOINT_STEPS_ENV = "PLATE_CHECKPOINT_STEPS"  # set to N: resume.pt every N steps instead (tests, slow steps)


def seed_everything(seed: int) -> None:
    random.seed(seed)  # the seed wrote `random.seed = (seed)`, which seeds nothing
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_lr(step: int, total: int, cfg: Config) -> float:
    """Linear warm-up, then cosine decay to 1 % of the peak."""
    peak, warm = cfg.training.lr, min(cfg.training.warmup_steps, max(1, total // 10))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def province_weights(data: SplitData, provinces: list[str], power: float = 0.5) -> torch.Tensor:
    """Class weights from the TRAINING labels (the seed used validation labels): (N / (K n_c)) ** power,
    1 for classes absent from training."""
    counts = np.zeros(len(provinces))
    index = {p: i for i, p in enumerate(provinces)}
    for t in data.texts:
        counts[index[t[0]]] += 1
    present = counts > 0
    w = np.ones(len(provinces))
    w[present] = (counts[present].sum() / (present.sum() * counts[present])) ** power
    return torch.tensor(w, dtype=torch.float32)


def plate_loss(prov_logits: torch.Tensor, ctc_logits: torch.Tensor, batch: dict, weights: torch.Tensor,
               norm: float | None = None) -> torch.Tensor:
    """Weighted cross-entropy on the raw province logits (no softmax first: the seed's defect) plus CTC on the
    rest (per plate, divided by its length), summed over the plates and divided by ``norm`` (default: the
    batch size). Sums make shards of one batch add up exactly in multi-process training."""
    ce = F.cross_entropy(prov_logits.float(), batch["province"], weight=weights, reduction="none")
    lp = ctc_logits.float().log_softmax(-1).transpose(0, 1)  # [T, B, C]
    t = torch.full((lp.shape[1],), lp.shape[0], dtype=torch.long)
    ctc = F.ctc_loss(lp, batch["targets"], t, batch["target_lengths"], blank=0, reduction="none", zero_infinity=False)
    return (ce + ctc / batch["target_lengths"]).sum() / (norm or len(ce))


@torch.no_grad()
def validate(model, data: SplitData, ds: PlateBatches, cfg: Config, device, weights) -> dict[str, float]:
    model.eval()
    loss_sum, preds = 0.0, []
    for batch in batch_loader(ds, cfg.training.eval_batch_size, shuffle=False):
        prov, ctc = model(batch["images"].to(device).float().div_(255))
        loss_sum += plate_loss(prov.cpu(), ctc.cpu(), batch, weights).item() * len(prov)
        preds += decode_logits(prov, ctc, list(cfg.provinces))[0]
    m = metrics.summarize(preds, data.texts)
    model.train()
    return {"val_loss": loss_sum / max(1, len(preds)), "val_word_acc": m["word_acc"], "val_char_acc": m["char_acc"],
            "val_cer": m["cer"], "val_province_acc": m["province_acc"]}


def init_weights(model: torch.nn.Module, cfg: Config, path: str) -> None:
    """Fine-tuning: copy a checkpoint's weights into ``model``; a different model or alphabet is an error."""
    if not Path(path).is_file():
        raise ConfigError(f"training.init_from {path} is not a checkpoint file here; point it at one (a run's "
                          "runs/<run.name>/best.pt, or models/plate_default.pt)"
                          + (", not a folder" if Path(path).is_dir() else ""))
    ck = read_checkpoint(path)
    check_fits(ck, cfg, f"training.init_from {path}")
    load_weights(model, ck, f"training.init_from {path}")
    log.info("initialised from %s", path)


@dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(cfg: Config) -> tuple[Dist, torch.device]:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPUs, gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), pick_device(cfg.run.device)
    cuda = torch.cuda.is_available() and cfg.run.device != "cpu"
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cpu")
    if cuda:
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        torch.cuda.set_device(device)
    return Dist(dist.get_rank(), world), device


@dataclass
class EpochState:
    """How far an epoch has got: batches done and the sums its rows need (stored in resume.pt)."""

    batch: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    elapsed: float = 0.0


class CheckpointClock:
    """When a mid-epoch checkpoint is due: every ``steps`` optimiser steps, else every ``CHECKPOINT_SECONDS``."""

    def __init__(self, steps: int | None):
        self.steps, self.last = steps, time.monotonic()

    def due(self, step: int) -> bool:
        if self.steps:
            return step % self.steps == 0
        if time.monotonic() - self.last < CHECKPOINT_SECONDS:
            return False
        self.last = time.monotonic()
        return True


def checkpoint_steps(every: int | None) -> int | None:
    """``every``, else ``$PLATE_CHECKPOINT_STEPS``, else None (time-based)."""
    if every is not None:
        return every
    raw = os.environ.get(CHECKPOINT_STEPS_ENV, "").strip()
    if raw and not (raw.isdigit() and int(raw) > 0):
        raise ConfigError(f"${CHECKPOINT_STEPS_ENV} must be a positive whole number of steps, got {raw!r}")
    return int(raw) if raw else None


def rng_states(device: torch.device) -> dict:
    """Every generator's state as data (tensors, lists, numbers), so that a checkpoint holding it loads with
    ``weights_only=True``: NumPy's key array becomes a list of ints, Python's state is a tuple of ints already."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
            "np_rng": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def set_rng_states(ck: dict) -> None:
    """Restore ``rng_states`` (or an older checkpoint's, whose NumPy keys were an array)."""
    torch.set_rng_state(ck["torch_rng"])
    if ck.get("py_rng") is not None:
        version, internal, gauss = ck["py_rng"]
        random.setstate((version, tuple(internal), gauss))
    if ck.get("np_rng") is not None:
        kind, keys, pos, has_gauss, gauss = ck["np_rng"]
        np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    if ck.get("cuda_rng") is not None and torch.cuda.device_count() == len(ck["cuda_rng"]):
        torch.cuda.set_rng_state_all(ck["cuda_rng"])


def train_epoch(net, opt, scaler, batches: Iterable[dict], n_batches: int, cfg: Config, device, weights, aug_gen,
                step: int, total: int, ddp: Dist, part: EpochState, desc: str | None,
                clock: CheckpointClock | None = None, save: Callable[[int], None] | None = None) -> int:
    """Step over ``batches`` (the rest of an epoch), adding to ``part``; ``save(step)`` when ``clock`` says so.
    Returns the global step. ``desc`` None: no progress bar; in a Jupyter kernel with ipywidgets it is a widget."""
    from tqdm.auto import tqdm  # chosen at the call: text on stderr, or a widget in a kernel

    use_amp = cfg.training.amp and device.type == "cuda"
    channels_last = cfg.training.channels_last
    bar = tqdm(batches, total=n_batches, desc=desc, disable=desc is None or not ddp.main, leave=False, mininterval=2,
               dynamic_ncols=True)
    for batch in bar:
        if step >= total:
            break
        lr = get_lr(step, total, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x = batch["images"].to(device, non_blocking=True).float().div_(255)
        x = augment_batch(x, cfg.augment, aug_gen, batch["offset"], batch["total"])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            prov, ctc = net(x)
        b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss = plate_loss(prov, ctc, b, weights, norm=batch["total"] / ddp.world)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.training.grad_clip)
        scaler.step(opt)
        scaler.update()
        logged = loss.detach()
        if ddp.world > 1:  # the global batch's loss, as one process would log it
            dist.all_reduce(logged)
            logged /= ddp.world
        step, part.batch, part.seen = step + 1, part.batch + 1, part.seen + batch["total"]
        part.loss_sum += logged.item()
        bar.set_postfix(loss=f"{part.loss_sum / part.batch:.3f}", lr=f"{lr:.2e}", refresh=False)
        if save is not None and clock is not None and clock.due(step):
            save(step)
    return step


def _training_data(cfg: Config) -> tuple[SplitData, torch.Tensor | None, SplitData]:
    """The training set (and its draw weights) and the validation split; an empty one is a ``DataError``."""
    for key in unused_label_fixes(cfg):
        log.warning("data.label_fixes: %s names none of this run's sources (data.source, data.train_sources, "
                    "data.eval_sets); its fixes are not used. Name the source as those keys do", key)
    (train, draw_weights), val = load_training_set(cfg), load_validation_set(cfg)
    require_plates(train, resolve_source(cfg), f"{len(val)} plate(s) are held out for validation. Put plate crops "
                   "under train/ (named <id>-<plate>.jpg, or listed in labels.csv or labels.txt), or point "
                   "data.source at another source")
    if len(val) == 0:
        raise DataError(f"the val split of {val.source} is empty: data.val_fraction={cfg.data.val_fraction} of its "
                        f"{len(train)} training plates gave none. Add plates under train/ or raise data.val_fraction")
    return train, draw_weights, val


FEW_PLATES = 10_000  # from scratch on fewer real plates, a recogniser learns little (the CCPD sample's 450: none)


def warn_if_too_few(cfg: Config, n_train: int) -> None:
    """Say so when a run learns from scratch on few real plates alone: the shipped model fine-tuned on them
    (``profiles/finetune.yaml``) reads far better than a network that has seen a few hundred plates."""
    synthetic = cfg.data.source == "synthetic" or any(s.path == "synthetic" for s in cfg.data.train_sources)
    if n_train < FEW_PLATES and not cfg.training.init_from and not synthetic:
        log.warning("training from scratch on %d plates, without synthetic ones: too few to learn 31 provinces and 34 "
                    "symbols (the CCPD sample's 450 train photos read nothing after 10 epochs). To teach the shipped "
                    "model your crops instead: --profile profiles/finetune.yaml (make report ... "
                    "PROFILE=profiles/finetune.yaml; README, \"Your own crops\")", n_train)


def plates_key(train: SplitData, val: SplitData) -> str:
    """What a run trains and validates on, as a short hash: each plate's file name and label, in order (not the
    files' times, which a copy or a checkout changes, nor files that are no plates, such as .DS_Store)."""
    text = json.dumps([train.names, train.texts, val.names, val.texts], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _build(cfg: Config, device: torch.device, init: bool = True) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model (from ``training.init_from``'s weights with ``init``: not on a resume, whose checkpoint replaces
    them) and its optimiser."""
    model = build_model(cfg.model.name, model_spec(cfg))
    if cfg.training.init_from and init:
        init_weights(model, cfg, cfg.training.init_from)
    model = model.to(device)
    if cfg.training.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.training.optimizer == "adamw" else torch.optim.Adam
    return model, opt_cls(model.parameters(), lr=cfg.training.lr, weight_decay=cfg.training.weight_decay)


LAYOUT_KEYS = {"n_train": "the training set's size", "epoch_plates": "training.epoch_plates (plates drawn an epoch)",
               "batch_size": "training.batch_size", "processes": "the number of torchrun processes"}
"""What fixes the order of an epoch's batches: a mid-epoch resume.pt is only valid while each is unchanged."""


def check_layout(saved: dict, now: dict, path: Path) -> None:
    """A ``CheckpointError`` naming the first of ``LAYOUT_KEYS`` that differs between a mid-epoch checkpoint's
    epoch layout and this run's (keys an older checkpoint lacks are not compared)."""
    for key, what in LAYOUT_KEYS.items():
        if key in saved and saved[key] != now[key]:
            raise CheckpointError(f"{path} was written mid-epoch with {what} {saved[key]}; this run has {now[key]}, "
                                  "so the epoch's batches would not be the ones it left off in. Set it back to resume "
                                  f"mid-epoch, or delete {path} to resume from last.pt (the end of the last epoch)")


def _save_resume(path: Path, model, opt, scaler, aug_gen, cfg: Config, device, epoch: int, part: EpochState,
                 t0: float, best: tuple[float, float], layout: dict, step: int) -> None:
    """resume.pt: everything needed to go on after ``part.batch`` batches of ``epoch`` as if never stopped."""
    partial = asdict(part) | {"elapsed": part.elapsed + time.perf_counter() - t0}
    save_checkpoint(path, model, cfg, epoch=epoch, batch=part.batch, step=step, best=best,
                    optimizer=opt.state_dict(), scaler=scaler.state_dict(), aug_rng=aug_gen.get_state(),
                    **rng_states(device), partial=partial, layout=layout)


def fit(cfg: Config, resume: bool = False, progress: bool = True, reuse: bool = False,
        checkpoint_every: int | None = None) -> Path:
    """Train as configured; returns the run folder. Under ``torchrun`` every process trains its share of each
    global batch (DistributedDataParallel); rank 0 alone validates, logs and writes checkpoints.

    ``resume``: go on from the run folder's latest checkpoint (mid-epoch ones included). ``reuse``: return a
    finished run of the same config, code and data without training. ``checkpoint_every``: write resume.pt
    every this many steps (default: ``$PLATE_CHECKPOINT_STEPS``, else every ``CHECKPOINT_SECONDS``)."""
    run_dir = Path(cfg.training.out_dir) / cfg.run.name
    if reuse:
        why = finished_run_differs(cfg, run_dir)
        if why is None:
            log.info("reusing the finished run %s: same config, code and data (fit(reuse=False) trains again)", run_dir)
            return run_dir
        log.info("training %s afresh rather than reusing it: %s", run_dir, why)
    clock = CheckpointClock(checkpoint_steps(checkpoint_every))
    ddp, device = init_distributed(cfg)
    kept, started_from_kept, throwaway = None, False, False
    if ddp.world > 1:
        dist.barrier()  # every process has looked at run_dir before rank 0 moves it
    if not resume and ddp.main and holds_run(run_dir):  # never delete a run's work: the folder moves aside, whole
        what = describe_run(run_dir)
        throwaway = was_throwaway(run_dir)
        kept = keep_aside(run_dir)
        init = cfg.training.init_from
        cfg = follow_init_from(cfg, run_dir, kept)
        started_from_kept = cfg.training.init_from != init  # init_from pointed into the run now kept aside
    if ddp.world > 1:
        dist.barrier()  # rank 0 has kept the old run aside: the others' init_from follows it there too
        if not resume and not ddp.main and (moved := kept_runs(run_dir)) and not Path(cfg.training.init_from or "/").exists():
            cfg = follow_init_from(cfg, run_dir, moved[-1], quiet=True)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, where the run folder goes (training.out_dir / run.name); move it "
                          "away or choose another run.name")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_log(run_dir / "train.log", append=resume, enabled=ddp.main):
            if kept is not None and cfg.run.keep_replaced:
                log.warning("%s held %s: kept aside as %s (a fresh start never deletes a run; `plate train --resume "
                            "--set run.name=%s` continues an interrupted one there). %s", run_dir, what, kept, kept.name,
                            kept_note(run_dir))
            elif kept is not None and throwaway:
                log.info("%s held %s: moved to %s, to be deleted when this run finishes (run.keep_replaced: false)",
                         run_dir, what, kept)
            elif kept is not None:
                log.warning("%s held %s: kept aside as %s, not deleted when this run finishes although "
                            "run.keep_replaced is false: that run was not a throwaway one", run_dir, what, kept)
            try:
                _fit(cfg, run_dir, ddp, device, resume, progress, clock)
            except KeyboardInterrupt:
                saved = [f for f in ("last.pt", "resume.pt") if (run_dir / f).is_file()]
                log.warning("interrupted: %s", f"{run_dir} keeps {' and '.join(saved)}; `plate train --resume` with "
                            "this config continues it" if saved else f"{run_dir} holds no checkpoint of this run yet")
                raise
            if kept is not None and not cfg.run.keep_replaced:  # a throwaway run: the one it replaced goes now
                if started_from_kept:
                    log.info("%s kept: this run started from its weights (training.init_from)", kept)
                elif not throwaway:
                    log.warning("%s kept: it was not a throwaway run (its run.keep_replaced was true), and a "
                                "throwaway run replaces only another. %s", kept, kept_note(run_dir))
                else:
                    shutil.rmtree(kept, ignore_errors=True)
                    log.info("%s deleted: %s finished, and run.keep_replaced is false", kept, run_dir)
    except BaseException:
        if kept is not None and not holds_run(run_dir):  # this start failed before it trained: the old run goes back
            restore_run(kept, run_dir)
            log.warning("%s is back in %s (this start wrote no checkpoint)", kept, run_dir)
        elif kept is not None and not cfg.run.keep_replaced:
            log.warning("%s is kept: this run did not finish (run.keep_replaced deletes it only then)", kept)
        raise
    if ddp.world > 1:
        dist.destroy_process_group()
    return run_dir


def _fit(cfg: Config, run_dir: Path, ddp: Dist, device: torch.device, resume: bool, progress: bool,
         clock: CheckpointClock) -> None:
    seed_everything(cfg.run.seed)
    if device.type == "cpu":
        torch.set_num_threads(cfg.training.threads or max(1, (os.cpu_count() or 1) // ddp.world))
    model, opt = _build(cfg, device, init=not resume)  # before the data: a model that cannot be built fails at once
    ck_path, ck = start(run_dir, cfg, resume, ddp.main)
    train, draw_weights, val = _training_data(cfg)
    if ddp.main:
        warn_if_too_few(cfg, len(train))
    provinces = list(cfg.provinces)
    train_ds, val_ds = PlateBatches(train, provinces), PlateBatches(val, provinces)
    weights = province_weights(train, provinces) if cfg.training.province_weights else torch.ones(len(provinces))
    draws = cfg.training.epoch_plates or len(train)  # plates drawn per epoch
    layout = {"n_train": len(train), "epoch_plates": draws, "batch_size": cfg.training.batch_size, "processes": ddp.world,
              "data": plates_key(train, val)}  # the plates trained and validated on: a resume continues on them
    total = math.ceil(draws / cfg.training.batch_size) * cfg.training.epochs
    if cfg.training.max_steps:
        total = min(total, cfg.training.max_steps)
    aug_gen = torch.Generator().manual_seed(cfg.run.seed)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.training.amp and device.type == "cuda")

    # best.pt: the highest validation word accuracy; a tie (common on a small validation set) goes to the lower
    # validation loss. ``best`` holds (word acc, -loss) so tuples compare that way.
    start_epoch, step, best, part = 0, 0, (-1.0, -math.inf), EpochState()
    if ck is not None:
        trained_on = (ck.get("layout") or {}).get("data")  # None in a checkpoint from before it was stored
        if trained_on is not None and trained_on != layout["data"]:
            raise ConfigError(f"--resume: the training data changed since {ck_path} was written (other plates or "
                              "labels in its train or val split): one run on two datasets would look like a run on "
                              "the last. Resume with the data it was trained on, or train without --resume (a new "
                              "run; this one is kept aside)")
        load_weights(model, ck, f"{ck_path} (--resume)")
        opt.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        (start_epoch, done), step = position(ck), ck["step"]
        best = tuple(ck["best"]) if "best" in ck else (ck["best_word_acc"], -math.inf)  # older last.pt
        aug_gen.set_state(ck["aug_rng"])
        if done:
            check_layout(ck["layout"] if "layout" in ck else {"n_train": ck["n_train"]}, layout, ck_path)  # older: n_train
            part = EpochState(**ck["partial"])
        else:  # the end of an epoch: before the next epoch's loader draws its seed, as in an unbroken run
            set_rng_states(ck)
        log.info("resumed %s at epoch %d, batch %d, step %d", ck_path, start_epoch + 1, done, step)
    if ddp.main:
        (run_dir / "config.yaml").write_text(config_text(cfg), "utf-8")
        (run_dir / "env.json").write_text(json.dumps({**versions(), "processes": ddp.world}, indent=1))
        log.info("model %s: %d parameters; %d train / %d val plates; device %s × %d", cfg.model.name,
                 count_params(model), len(train), len(val), device, ddp.world)

    net = model
    if ddp.world > 1:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    for epoch in range(start_epoch, cfg.training.epochs):
        if step >= total:
            break
        model.train()
        t0 = time.perf_counter()
        loader = batch_loader(train_ds, cfg.training.batch_size, shuffle=True, seed=cfg.run.seed, epoch=epoch,
                              num_workers=cfg.training.num_workers, pin_memory=device.type == "cuda",
                              rank=ddp.rank, world_size=ddp.world, weights=draw_weights, start=part.batch,
                              draws=draws)
        batches = iter(loader)  # creating the iterator draws a seed from torch's global generator
        if part.batch:  # mid-epoch: the generators as the interrupted run left them, after that draw
            set_rng_states(ck)
        save = partial(_save_resume, run_dir / "resume.pt", model, opt, scaler, aug_gen, cfg, device, epoch, part,
                       t0, best, layout) if ddp.main else None
        desc = f"epoch {epoch + 1}/{cfg.training.epochs}" if progress else None
        step = train_epoch(net, opt, scaler, batches, len(loader), cfg, device, weights.to(device), aug_gen, step,
                           total, ddp, part, desc, clock, save)
        part.elapsed += time.perf_counter() - t0
        if ddp.main:
            row = {"epoch": epoch + 1, "step": step, "lr": get_lr(step - 1, total, cfg),
                   "train_loss": part.loss_sum / max(1, part.batch), **validate(model, val, val_ds, cfg, device, weights)}
            speed = part.seen / part.elapsed
            append_row(run_dir / "metrics.csv", row, METRIC_FIELDS)
            append_row(run_dir / "timings.csv", {"epoch": epoch + 1, "train_plates_per_s": speed,
                                                  "epoch_s": part.elapsed}, TIMING_FIELDS)
            log.info("epoch %d: loss %.3f, val word acc %.4f, %.0f plates/s", epoch + 1, row["train_loss"],
                     row["val_word_acc"], speed)
            if (row["val_word_acc"], -row["val_loss"]) > best:
                best = (row["val_word_acc"], -row["val_loss"])
                save_checkpoint(run_dir / "best.pt", model, cfg, epoch=epoch, step=step, val=row)
            if cfg.training.keep_epochs:
                save_checkpoint(run_dir / f"epoch{epoch + 1}.pt", model, cfg, epoch=epoch, step=step, val=row)
            save_checkpoint(run_dir / "last.pt", model, cfg, epoch=epoch, step=step, best=best,
                            optimizer=opt.state_dict(), scaler=scaler.state_dict(), aug_rng=aug_gen.get_state(),
                            **rng_states(device), val=row, layout=layout)
            (run_dir / "resume.pt").unlink(missing_ok=True)
        part = EpochState()
        if ddp.world > 1:
            dist.barrier()
    if ddp.main:
        summary = {"run": str(run_dir), "model": cfg.model.name, "params": count_params(model), "steps": step,
                   "processes": ddp.world, "best_val_word_acc": best[0], "best_val_loss": -best[1],
                   "skipped_count": {"train": len(train.skipped), "val": len(val.skipped)},
                   "skipped": {"train": train.skipped, "val": val.skipped}, **run_inputs(cfg)}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), "utf-8")
        n_bad = len(train.skipped) + len(val.skipped)
        log.info("finished %s: best val word acc %.4f%s", run_dir, best[0],
                 f"; {n_bad} bad sample(s) skipped (listed above and in summary.json)" if n_bad else "")
