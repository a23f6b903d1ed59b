"""Dataset: decode and preprocess a source's split once into a cached uint8 array, then serve batches.

``load_split`` decodes every image of a split in parallel, letterboxes it to the model's input size and
stores the array under ``data.cache_dir`` keyed by the source's content and the preprocessing settings (a
change to either builds a new cache). Cache files are written atomically, the array before its ``.json`` index,
and checked against the index before use: one cut short by a crash is rebuilt with a warning. The index records
what the split was decoded from, and its time is the last use (``cached_splits``, ``prune_cache``: ``plate
cache``). Epochs then
slice memory instead of decoding JPEGs. Bad images and labels raise a ``DataError`` naming the file, or with
``skip_bad`` are counted, logged and listed in ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import Config, PreprocessConfig
from .errors import DiskFullError  # noqa: F401  (importable here, as before errors.py)
from .files import atomic_write, size_text
from .plates import SYMBOL_CLASS
from .preprocess import decode_all
from .sources import IMAGE_EXTS, DataError, Source, open_source

log = logging.getLogger(__name__)
CACHE_VERSION = 6  # 2: the .json records the array's shape and byte size; 3: which files are samples changed (WebP,
# I/O labels, zip duplicates, GBK names); 4, 5: CCPD photos under train/ and test/ keep those splits, ccpd_np/ left
# out, labels.txt and tab- or semicolon-separated labels.csv read, a zip's crops outside train/ and test/ split by
# plate text and labelled by a label list it holds, plates found in more file-name forms; 6: val/ folders are the val
# split (were 85 % train), zip names with \ as separator, macOS metadata twins left out, GBK names that read as UTF-8


@dataclass
class SplitData:
    """One split, decoded: ``images`` [N, H, W, C] uint8 and the plate text, name and meta of each."""

    images: np.ndarray
    texts: list[str]
    names: list[str]
    meta: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    source: str = ""
    split: str = ""

    def __len__(self) -> int:
        return len(self.texts)


# --- building the cache ---------------------------------------------------------------------------------


def _cache_key(source: Source, split: str, pre: PreprocessConfig, limit: int | None, skip_bad: bool) -> str:
    desc = json.dumps([CACHE_VERSION, source.kind, source.fingerprint(), source.val_fraction, split,
                       pre.model_dump(), limit, skip_bad, source.max_bytes])
    return hashlib.sha1(desc.encode()).hexdigest()[:16]


def _save_npy(path: Path, images: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a temporary name
        np.save(f, images)


UNLABELLED = ("None of its file names is a plate and it has no label list: a folder of crops is labelled by its "
              "file names (<plate>.jpg, <id>-<plate>.jpg), by a labels.csv (file,label) or by a labels.txt (lines "
              "<file> <plate>, a tab or spaces between). To read the plates of "
              "unlabelled images, use `plate predict FOLDER`.")


def _reject(bad: list[tuple[str, str]], source: Source, hint: str = "") -> None:
    shown = "\n  ".join(f"{n}: {why}" for n, why in bad[:10])
    more = f"\n  … and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise DataError(f"{len(bad)} bad sample(s) in {source.path}:\n  {shown}{more}\n"
                    + (hint or "Fix or remove them, or set data.skip_bad: true to skip them (they are then listed "
                               "in the run log)."))


def _log_skipped(data: SplitData) -> None:
    if data.skipped:
        log.warning("skipped %d bad sample(s) in %s/%s: %s", len(data.skipped), data.source, data.split,
                    "; ".join(f"{n} ({why})" for n, why in data.skipped))


def _read_cache(arr_path: Path, json_path: Path, pre: PreprocessConfig) -> tuple[np.ndarray, dict] | None:
    """The cached array (memory-mapped) and its index, or None (with a warning) when either is missing,
    unreadable, or does not match the other: a cache cut short by a crash is rebuilt, never half-read."""
    if not (arr_path.is_file() and json_path.is_file()):
        return None
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
        shape = tuple(info["shape"])
        if arr_path.stat().st_size != info["npy_bytes"]:
            raise ValueError(f"{arr_path.stat().st_size} bytes on disk, {info['npy_bytes']} written")
        images = np.load(arr_path, mmap_mode="r")
        if images.shape != shape or images.dtype != np.uint8 or len(info["texts"]) != shape[0]:
            raise ValueError(f"array {images.shape} {images.dtype}, index {shape} for {len(info['texts'])} plates")
        if shape[1:] != (pre.height, pre.width, pre.channels):
            raise ValueError(f"images are {shape[1:]}, preprocessing wants {(pre.height, pre.width, pre.channels)}")
        return images, info
    except (ValueError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        log.warning("cache %s is incomplete or damaged (%s); rebuilding it", arr_path, e)
        return None


def load_split(source: Source, split: str, pre: PreprocessConfig, cache_dir: str | Path | None = None,
               skip_bad: bool = False, limit: int | None = None, workers: int = 0) -> SplitData:
    """Decode ``split`` of ``source`` into a ``SplitData``, from the cache when it is there."""
    key = _cache_key(source, split, pre, limit, skip_bad)
    arr_path = json_path = None
    if cache_dir is not None:
        cdir = Path(cache_dir)
        cdir.mkdir(parents=True, exist_ok=True)
        arr_path, json_path = cdir / f"{split}-{key}.npy", cdir / f"{split}-{key}.json"
        cached = _read_cache(arr_path, json_path, pre)
        if cached is not None:
            images, info = cached
            with suppress(OSError):  # the index's time is the cache's last use (plate cache --prune); a
                os.utime(json_path)  # read-only cache folder is read all the same
            data = SplitData(images, info["texts"], info["names"], info["meta"],
                             [tuple(s) for s in info["skipped"]], str(source.path), split)
            _log_skipped(data)
            return data

    records = source.records(split)
    if limit is not None:
        records = records[:limit]
    bad = [(r.name, r.error) for r in records if r.error]
    if bad and not skip_bad:
        unlabelled = len(bad) == len(records) and source.kind in ("crop_folder", "dl1_zip") and source.labels_path is None
        _reject(bad, source, UNLABELLED if unlabelled else "")
    records = [r for r in records if not r.error]
    decoded = decode_all(source, records, pre, workers or os.cpu_count() or 1)
    img_bad = [(r.name, d) for r, d in zip(records, decoded, strict=True) if isinstance(d, str)]
    if img_bad and not skip_bad:
        _reject(img_bad, source)
    keep = [(r, d) for r, d in zip(records, decoded, strict=True) if not isinstance(d, str)]
    images = np.stack([d for _, d in keep]) if keep else np.zeros((0, pre.height, pre.width, pre.channels), np.uint8)
    data = SplitData(images, [r.text for r, _ in keep], [r.name for r, _ in keep], [r.meta for r, _ in keep],
                     bad + img_bad, str(source.path), split)
    _log_skipped(data)
    if arr_path is not None and json_path is not None:  # the array first: the index commits it
        log.info("%s split of %s: %d crops decoded, cached in %s (data.cache_dir%s)", split, source.path, len(data),
                 arr_path.parent, "" if arr_path.is_absolute() else ", under the working folder")
        atomic_write(arr_path, lambda p: _save_npy(p, images), nbytes=images.nbytes)
        info = {"shape": list(images.shape), "npy_bytes": arr_path.stat().st_size,
                "about": {"source": str(source.path), "kind": source.kind, "split": split, "version": CACHE_VERSION,
                          "preprocess": pre.model_dump(), "limit": limit},
                "texts": data.texts,
                "names": data.names, "meta": data.meta, "skipped": data.skipped}
        text = json.dumps(info, ensure_ascii=False).encode("utf-8")
        atomic_write(json_path, lambda p: p.write_bytes(text), nbytes=len(text))
        log.info(cache_note(arr_path.parent))
    return data


def cache_note(cache_dir: Path) -> str:
    """What ``cache_dir`` holds, for the log: nothing prunes it unasked, and a change of source or preprocessing adds
    a cache beside the old ones."""
    caches = cached_splits(cache_dir)
    return (f"{cache_dir} holds {len(caches)} cached split(s), {size_text(sum(c.bytes for c in caches))}; nothing "
            "prunes them unasked: `plate cache` lists them, `plate cache --prune DAYS` deletes those unused for DAYS "
            "days, and a deleted one is decoded again when next needed")


@dataclass
class CachedSplit:
    """One cached split in a cache folder: its array and index files, what it was decoded from (``about``, as the
    index records it; empty for a cache written before plate_lib recorded it), its plates, bytes on disk and
    last use (the index's modification time, which every read renews; the array's when the index is missing)."""

    name: str  # <split>-<key>, the files' stem
    files: list[Path]
    about: dict
    plates: int | None
    bytes: int
    last_used: float


CACHE_NAME = re.compile(r"^[a-z]+-[0-9a-f]{16}$")  # load_split's <split>-<key> (the key: _cache_key's 16 hex digits)


def cached_splits(cache_dir: str | Path) -> list[CachedSplit]:
    """The cached splits in ``cache_dir`` (``load_split``'s ``<split>-<key>.npy`` and ``.json``), least recently
    used first; an array without its index (a run stopped while writing it) is one too, with no plates."""
    groups: dict[str, list[Path]] = {}
    for p in Path(cache_dir).glob("*-*.*"):  # "."-named: another run's file being written, not matched
        if p.suffix in (".npy", ".json") and CACHE_NAME.match(p.stem):  # no other file is taken for a cache
            groups.setdefault(p.stem, []).append(p)
    out = []
    for name, files in groups.items():
        stats = {}
        for p in files:
            with suppress(OSError):  # removed by another process meanwhile
                stats[p.suffix] = p.stat()
        if not stats:
            continue
        about, plates = {}, None
        if ".json" in stats:
            with suppress(OSError, ValueError, AttributeError, TypeError, KeyError):
                info = json.loads(Path(cache_dir, name + ".json").read_text(encoding="utf-8"))
                about, plates = info.get("about", {}), len(info["texts"])
        used = stats.get(".json", stats.get(".npy")).st_mtime
        out.append(CachedSplit(name, sorted(files), about, plates, sum(st.st_size for st in stats.values()), used))
    return sorted(out, key=lambda c: (c.last_used, c.name))


def prune_cache(cache_dir: str | Path, unused_days: float, now: float | None = None) -> list[CachedSplit]:
    """Delete the cached splits of ``cache_dir`` not used for ``unused_days`` days (0: every one); the ones
    deleted. A deleted split is decoded again from its source when next needed."""
    if unused_days < 0:
        raise ValueError(f"--prune takes a number of days, 0 or more; got {unused_days}")
    now = time.time() if now is None else now
    gone = []
    for cache in cached_splits(cache_dir):
        if now - cache.last_used >= unused_days * 86400:
            for p in (*[f for f in cache.files if f.suffix == ".json"], *[f for f in cache.files if f.suffix != ".json"]):
                with suppress(FileNotFoundError):  # the index first: a half-deleted cache is never read as whole
                    p.unlink()
            gone.append(cache)
    return gone


def require_plates(data: SplitData, source: Source, fix: str, split_option: bool = False) -> SplitData:
    """``data`` when it holds plates; else a ``DataError`` naming the source and the split, what was found (image
    files in the source and in the split, how many rejected) and ``fix``. ``split_option``: the caller takes
    ``--split``, so suggest ``--split all`` when other splits hold files."""
    if len(data):
        return data
    scanned = source.scanned()
    n_split = sum(data.split in ("all", where) for where, _ in scanned)
    lists = f"its {source.labels_path.name} names" if source.labels_path is not None else \
        "its split lists (splits/*.txt) name"
    found = (f"{len(scanned)} image file(s) in the source, {n_split} of them in this split" if scanned
             else f"{lists} none of its files ({len(source.unlisted)} image file(s) there are not listed)"
             if source.unlisted else f"no image files ({', '.join(IMAGE_EXTS)}) in it")
    if data.skipped:
        name, why = data.skipped[0]
        found += f", {len(data.skipped)} rejected as bad samples (first: {name}: {why})"
    hint = ""
    if split_option and data.split != "all" and len(scanned) > n_split:
        hint = (f" `--split all` reads all {len(scanned)} (a folder of crops without train/ and test/ is split by a "
                "hash of the plate text, which leaves a small one's test split empty).")
    raise DataError(f"the {data.split} split of {source.path} is empty: {found}.{hint} {fix}")


def resolve_source(cfg: Config, path: str | None = None, crop: str | None = None, rectify: bool = False) -> Source:
    """The source ``path`` names (default: ``data.source``).

    ``synthetic`` generates its zip on first use, and again when the zip was made with other ``synth``
    settings (or by an older generator), so a changed config never trains on stale plates.
    """
    path = path or cfg.data.source
    if path == "synthetic":
        from .synth import generate_zip, settings_key, zip_settings

        zpath = Path(cfg.data.synthetic_path)
        if not zpath.is_file() or zip_settings(zpath) != settings_key(cfg.synth):
            log.info("generating synthetic plates into %s (%s)", zpath,
                     "synth settings changed" if zpath.is_file() else "first use")
            zpath.parent.mkdir(parents=True, exist_ok=True)
            generate_zip(zpath, cfg.synth, progress=sys.stderr.isatty())
        path = str(zpath)
    return open_cfg_source(cfg, path, crop, rectify)


def open_cfg_source(cfg: Config, path: str | os.PathLike, crop: str | None = None, rectify: bool = False,
                    ccpd_split: str | None = None) -> Source:
    """``open_source`` with the config's split share (``data.val_fraction``), crop mode (``crop``, default
    ``data.ccpd_crop``), file-size cap (``data.max_file_mb``) and crop size (``data.resize_crops``); ``rectify``
    warps each crop level (a train source's ``rectify``); its ``data.label_fixes`` entry, if it has one. CCPD2019
    photos are split as ``ccpd_split`` says; by default ``data.ccpd_split`` where ``path`` is ``data.source``, and
    by a hash of the file name elsewhere (``data.train_sources``, ``data.eval_sets``: a folder without CCPD2019's
    split lists, as the shared sample is, reads there as before)."""
    if ccpd_split is None:
        ccpd_split = cfg.data.ccpd_split if _resolved(path) == _resolved(cfg.data.source) else "hash"
    return open_source(path, cfg.data.val_fraction, crop or cfg.data.ccpd_crop, max_file_mb=cfg.data.max_file_mb,
                       resize=cfg.data.resize_crops, rectify=rectify, label_fixes=label_fixes_of(cfg, path),
                       ccpd_split=ccpd_split)


def unused_label_fixes(cfg: Config) -> list[str]:
    """The ``data.label_fixes`` keys that name none of the config's sources (``data.source``, ``data.train_sources``,
    ``data.eval_sets``): a mistyped path, whose fixes would not be used."""
    used = {_resolved(p) for p in [cfg.data.source, *(s.path for s in cfg.data.train_sources), *cfg.data.eval_sets]}
    return [key for key in cfg.data.label_fixes if _resolved(key) not in used]


def label_fixes_of(cfg: Config, path: str | os.PathLike) -> str | None:
    """The fixes CSV ``data.label_fixes`` gives for the source at ``path`` (keys compared as resolved paths)."""
    here = _resolved(path)
    return next((fixes for key, fixes in cfg.data.label_fixes.items() if _resolved(key) == here), None)


def _resolved(path: str | os.PathLike) -> Path:
    """A config path as the file system names it: how ``data.label_fixes`` keys are matched to sources."""
    return Path(path).expanduser().resolve()


def load_cfg_split(cfg: Config, split: str, path: str | None = None, crop: str | None = None,
                   rectify: bool = False) -> SplitData:
    """``load_split`` with everything taken from the config (``crop``: this source's CCPD crop mode; ``rectify``:
    its crops warped level)."""
    return load_split(resolve_source(cfg, path, crop, rectify), split, cfg.preprocess, cfg.data.cache_dir,
                      cfg.data.skip_bad, cfg.data.limit)


def load_validation_set(cfg: Config) -> SplitData:
    """The val split of ``data.source`` and of every ``data.train_sources`` entry with ``validation: true``."""
    return concat_splits([load_cfg_split(cfg, "val")] + [load_cfg_split(cfg, "val", s.path, s.ccpd_crop, s.rectify)
                                                         for s in cfg.data.train_sources if s.validation])


def concat_splits(parts: list[SplitData]) -> SplitData:
    if len(parts) == 1:
        return parts[0]
    return SplitData(np.concatenate([p.images for p in parts]), [t for p in parts for t in p.texts],
                     [n for p in parts for n in p.names], [m for p in parts for m in (p.meta or [{}] * len(p))],
                     [s for p in parts for s in p.skipped], "+".join(p.source for p in parts), parts[0].split)


def load_training_set(cfg: Config) -> tuple[SplitData, torch.Tensor | None]:
    """The train split of ``data.source`` plus each ``data.train_sources`` entry, and per-plate draw weights
    (None: uniform). A source of weight w gets w / (weight of data.source = 1) of the draws; with
    ``province_balance`` b a plate's weight is further scaled by (count of its province) ** -b."""
    parts = [load_cfg_split(cfg, "train")]
    shares = [1.0]
    for extra in cfg.data.train_sources:
        parts.append(load_cfg_split(cfg, "train", extra.path, extra.ccpd_crop, extra.rectify))
        shares.append(extra.weight)
    data = concat_splits(parts)
    if len(parts) == 1 and cfg.data.province_balance == 0:
        return data, None
    w = torch.cat([torch.full((len(p),), s / max(1, len(p)), dtype=torch.float64) for p, s in zip(parts, shares, strict=True)])
    if cfg.data.province_balance > 0:
        provs = [t[0] for t in data.texts]
        counts = {p: provs.count(p) for p in set(provs)}
        w *= torch.tensor([counts[p] ** -cfg.data.province_balance for p in provs], dtype=torch.float64)
    return data, w


# --- batches --------------------------------------------------------------------------------------------


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, C] uint8 → [N, C, H, W] float in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


class PlateBatches(torch.utils.data.Dataset):
    """Indexed by a list of indices (use with a ``BatchSampler``): returns a whole batch at once.

    Batch: ``images`` uint8 [B, C, H, W], ``province`` [B], ``targets`` [B, L] (0-padded CTC classes),
    ``target_lengths`` [B], ``index`` [B].
    """

    def __init__(self, data: SplitData, provinces: list[str]):
        self.data = data
        prov_index = {p: i for i, p in enumerate(provinces)}
        enc = [[SYMBOL_CLASS[c] for c in t[1:]] for t in data.texts]
        unknown = sorted({t[0] for t in data.texts if t[0] not in prov_index})
        if unknown:
            raise DataError(f"{data.source}: plates of provinces {unknown} but the config's provinces list lacks them; "
                            "add them to provinces in cfg.yaml (a new model), or remove those plates")
        self.province = torch.tensor([prov_index[t[0]] for t in data.texts], dtype=torch.long)
        lens = [len(c) for c in enc]
        self.target_lengths = torch.tensor(lens, dtype=torch.long)
        self.targets = torch.zeros(len(enc), max(lens, default=1), dtype=torch.long)
        for i, c in enumerate(enc):
            self.targets[i, : len(c)] = torch.tensor(c)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item: tuple[list[int], int, int] | list[int]) -> dict[str, torch.Tensor]:
        """``item``: sorted indices, or (sorted indices, offset in the global batch, global batch size)."""
        idx, offset, total = item if isinstance(item, tuple) else (item, 0, len(item))
        images = torch.from_numpy(self.data.images[idx]).permute(0, 3, 1, 2)  # fancy indexing copies
        t = torch.tensor(idx)
        return {"images": images, "province": self.province[t], "targets": self.targets[t],
                "target_lengths": self.target_lengths[t], "index": t, "offset": offset, "total": total}


def batch_loader(dataset: PlateBatches, batch_size: int, shuffle: bool, seed: int = 0,
                 epoch: int = 0, num_workers: int = 0, pin_memory: bool = False, rank: int = 0,
                 world_size: int = 1, weights: torch.Tensor | None = None, start: int = 0,
                 draws: int | None = None) -> torch.utils.data.DataLoader:
    """A loader of whole batches, each sorted (memory order). Shuffling is seeded by ``(seed, epoch)``. With
    ``world_size`` > 1 (a distributed sampler) every rank draws the same global batches and takes its
    contiguous share, so the processes together see exactly what one process would. ``weights``: draw each
    epoch's plates with replacement in proportion to them (mixing sources, oversampling provinces).
    ``start``: leave out the epoch's first ``start`` batches (resuming mid-epoch: the order is the same).
    ``draws``: plates per shuffled epoch (default: the dataset's size); without weights, whole permutations
    follow one another, so every plate is drawn before any is drawn again."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n = (draws or len(dataset)) if shuffle else len(dataset)
    if shuffle and weights is not None:  # n draws with replacement, by weight
        order = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
    elif shuffle:
        laps = -(-n // max(1, len(dataset)))
        order = torch.cat([torch.randperm(len(dataset), generator=g) for _ in range(laps)])[:n].tolist()
    else:
        order = list(range(n))
    batches = []
    for i in range(0, n, batch_size):
        b = sorted(order[i:i + batch_size])
        if len(b) < world_size:  # a remainder too small to give every process a plate: all skip it
            continue
        lo, hi = len(b) * rank // world_size, len(b) * (rank + 1) // world_size
        batches.append((b[lo:hi], lo, len(b)))
    return torch.utils.data.DataLoader(dataset, sampler=batches[start:], batch_size=None,
                                       num_workers=num_workers, pin_memory=pin_memory)
