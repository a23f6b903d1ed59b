"""Train: the fit loop. Schedule, step, evaluate, checkpoint, log; AMP and channels-last are switches.

A run folder ``<training.out_dir>/<run.name>/`` gets ``config.yaml`` (resolved), ``env.json`` (versions),
``metrics.csv`` (one row per epoch), ``best.pt`` (by validation word accuracy), ``last.pt`` and
``summary.json``. ``resume=True`` continues from ``last.pt``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from . import metrics
from .augment import augment_batch
from .config import Config
from .dataset import PlateBatches, SplitData, batch_loader, load_cfg_split, load_training_set
from .inference import (
    CheckpointError,
    decode_logits,
    model_spec,
    pick_device,
    read_checkpoint,
    save_checkpoint,
)
from .models import build_model, count_params

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_word_acc", "val_char_acc", "val_cer",
                 "val_province_acc", "train_plates_per_s", "epoch_s"]


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


def _versions() -> dict:
    import cv2

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


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
    ck = read_checkpoint(path)
    if ck["model_name"] != cfg.model.name or ck["alphabet"]["provinces"] != list(cfg.provinces):
        raise CheckpointError(f"training.init_from {path} holds a {ck['model_name']} over {len(ck['alphabet']['provinces'])} "
                              f"provinces; this run trains {cfg.model.name} over {len(cfg.provinces)}")
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"training.init_from {path} does not fit this model's sizes: {e}") from None
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


def train_epoch(net, opt, scaler, loader, cfg: Config, device, weights, aug_gen, step: int, total: int,
                ddp: Dist, progress: bool, desc: str) -> tuple[int, int, float, int]:
    """One pass over ``loader``; returns (step, plates seen by all processes, summed loss, batches)."""
    use_amp = cfg.training.amp and device.type == "cuda"
    channels_last = cfg.training.channels_last and device.type == "cuda"
    seen, loss_sum, nb = 0, 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not (progress and ddp.main), leave=False, mininterval=2, dynamic_ncols=True)
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
        step, seen, nb = step + 1, seen + batch["total"], nb + 1
        loss_sum += logged.item()
        bar.set_postfix(loss=f"{loss_sum / nb:.3f}", lr=f"{lr:.2e}", refresh=False)
    return step, seen, loss_sum, nb


def fit(cfg: Config, resume: bool = False, progress: bool = True) -> Path:
    """Train as configured; returns the run folder. Under ``torchrun`` every process trains its share of each
    global batch (DistributedDataParallel); rank 0 alone validates, logs and writes checkpoints."""
    ddp, device = init_distributed(cfg)
    run_dir = Path(cfg.training.out_dir) / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)
    if device.type == "cpu":
        torch.set_num_threads(cfg.training.threads or max(1, (os.cpu_count() or 1) // ddp.world))

    (train, draw_weights), val = load_training_set(cfg), load_cfg_split(cfg, "val")
    if len(train) == 0:
        raise ValueError(f"the training split of {cfg.data.source} is empty; expected plates under train/")
    provinces = list(cfg.provinces)
    train_ds, val_ds = PlateBatches(train, provinces), PlateBatches(val, provinces)
    weights = province_weights(train, provinces) if cfg.training.province_weights else torch.ones(len(provinces))

    model = build_model(cfg.model.name, model_spec(cfg))
    if cfg.training.init_from:
        init_weights(model, cfg, cfg.training.init_from)
    model = model.to(device)
    if cfg.training.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.training.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.training.lr, weight_decay=cfg.training.weight_decay)
    total = math.ceil(len(train) / cfg.training.batch_size) * cfg.training.epochs
    if cfg.training.max_steps:
        total = min(total, cfg.training.max_steps)

    start_epoch, step, best, aug_state = 0, 0, -1.0, None
    metrics_csv = run_dir / "metrics.csv"
    if resume and (run_dir / "last.pt").is_file():
        ck = read_checkpoint(run_dir / "last.pt")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, best = ck["epoch"] + 1, ck["step"], ck["best_word_acc"]
        torch.set_rng_state(ck["torch_rng"])
        aug_state = ck["aug_rng"]
        log.info("resumed %s at epoch %d, step %d", run_dir / "last.pt", start_epoch, step)
    elif metrics_csv.exists() and ddp.main:
        metrics_csv.unlink()
    if ddp.main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False), "utf-8")
        (run_dir / "env.json").write_text(json.dumps({**_versions(), "processes": ddp.world}, indent=1))
        log.info("model %s: %d parameters; %d train / %d val plates; device %s × %d", cfg.model.name,
                 count_params(model), len(train), len(val), device, ddp.world)

    net = model
    if ddp.world > 1:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    aug_gen = torch.Generator().manual_seed(cfg.run.seed)
    if aug_state is not None:
        aug_gen.set_state(aug_state)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.training.amp and device.type == "cuda")
    for epoch in range(start_epoch, cfg.training.epochs):
        if step >= total:
            break
        model.train()
        t0 = time.perf_counter()
        loader = batch_loader(train_ds, cfg.training.batch_size, shuffle=True, seed=cfg.run.seed, epoch=epoch,
                              num_workers=cfg.training.num_workers, pin_memory=device.type == "cuda",
                              rank=ddp.rank, world_size=ddp.world, weights=draw_weights)
        step, seen, loss_sum, nb = train_epoch(net, opt, scaler, loader, cfg, device, weights.to(device), aug_gen,
                                               step, total, ddp, progress, f"epoch {epoch + 1}/{cfg.training.epochs}")
        elapsed = time.perf_counter() - t0
        if ddp.main:
            row = {"epoch": epoch + 1, "step": step, "lr": get_lr(step - 1, total, cfg),
                   "train_loss": loss_sum / max(1, nb), **validate(model, val, val_ds, cfg, device, weights),
                   "train_plates_per_s": seen / elapsed, "epoch_s": elapsed}
            _append_row(metrics_csv, row)
            log.info("epoch %d: loss %.3f, val word acc %.4f, %.0f plates/s", epoch + 1, row["train_loss"],
                     row["val_word_acc"], row["train_plates_per_s"])
            if row["val_word_acc"] > best:
                best = row["val_word_acc"]
                save_checkpoint(run_dir / "best.pt", model, cfg, epoch=epoch, step=step, val=row)
            save_checkpoint(run_dir / "last.pt", model, cfg, epoch=epoch, step=step, best_word_acc=best,
                            optimizer=opt.state_dict(), torch_rng=torch.get_rng_state(),
                            aug_rng=aug_gen.get_state(), val=row)
        if ddp.world > 1:
            dist.barrier()
    if ddp.main:
        summary = {"run": str(run_dir), "model": cfg.model.name, "params": count_params(model), "steps": step,
                   "processes": ddp.world, "best_val_word_acc": best,
                   "skipped": {"train": train.skipped, "val": val.skipped}}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), "utf-8")
    if ddp.world > 1:
        dist.destroy_process_group()
    return run_dir
