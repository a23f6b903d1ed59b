"""Config: the typed schema of ``cfg.yaml``, its loader and dotted overrides.

``load("cfg.yaml", ["training.epochs=3"])`` returns a frozen ``Config``. Unknown keys, wrong types and
impossible values raise ``ConfigError`` naming the key, the value found and what was expected. The same
validation serves the CLI (``--set key=value``) and papermill parameters (``overrides={...}``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .plates import PROVINCES
from .sources import MAX_FILE_MB
from .synth import SynthConfig


class ConfigError(ValueError):
    """A config file or override that does not validate; the message says which key and what to fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    name: str = Field("default", description="Run folder name under training.out_dir: a plain name, no separators")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds python, numpy and torch (0 to 2**32 - 1); the data "
                      "split does not depend on it")
    device: str = Field("auto", description="auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps")
    keep_replaced: bool = Field(True, description="A fresh start where a run of this name was keeps that run aside as "
                                "<name>.<n> (true), or deletes it once this one has finished (false: throwaway runs, "
                                "such as the smoke run the tests execute)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        bad = [c for c in ("/", "\\", ":", "\0") if c in v]
        if not v.strip() or v != v.strip() or v in (".", "..") or bad:
            raise ValueError("expected a plain name for the run folder inside training.out_dir (no / \\ or :, "
                             "not . or .., no spaces at either end)")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {v!r}")
        return v


class TrainSource(_Section):
    path: str = Field(description="'synthetic', a dl1 zip, a crops folder or a CCPD2019 folder; its train split is used")
    weight: float = Field(1.0, gt=0, description="Share of each epoch's draws relative to data.source (weight 1)")
    ccpd_crop: Literal["corners", "bbox"] | None = Field(
        None, description="CCPD2019 photos: how this source cuts them (default: data.ccpd_crop)")
    validation: bool = Field(False, description="Add this source's val split to the validation set (best.pt is chosen on it)")
    rectify: bool = Field(False, description="Warp each crop level first (rectify.py), as read_plates also reads "
                          "crops: list a source twice, as given and rectified, to train on both")


class DataConfig(_Section):
    source: str = Field("synthetic", description="'synthetic', a CCPD2019-dl1 zip, a crops folder or a CCPD2019 folder")
    synthetic_path: str = Field("data/synthetic.zip", description="Where the synthetic dl1-layout zip is written")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="Share of train/ held out for validation, by file-name hash")
    skip_bad: bool = Field(False, description="Skip undecodable images and bad labels (counted, listed) instead of failing")
    eval_sets: list[str] = Field(default_factory=list, description="Extra evaluation sets: zips or folders")
    cache_dir: str = Field("data/cache", description="Decoded, preprocessed arrays, keyed by source content and settings")
    limit: int | None = Field(None, ge=1, description="Use at most this many images per split (smoke runs)")
    train_sources: list[TrainSource] = Field(default_factory=list, description="More training sources mixed in by weight")
    province_balance: float = Field(0.0, ge=0, le=1, description="Oversample rare provinces: 0 = as drawn, 1 = equally often")
    max_file_mb: float = Field(MAX_FILE_MB, gt=0, description="A file or zip member larger than this (MB, by its "
                               "declared size, before reading) is a bad sample: refused, or skipped with skip_bad")
    label_fixes: dict[str, str] = Field(
        default_factory=dict, description="Corrected labels, without touching the data: {source path: CSV of "
                                          "file,label[,note]}; a corrected plate keeps its split (sources.py)")
    ccpd_crop: Literal["corners", "bbox"] = Field(
        "corners", description="CCPD2019 photos: cut the plate from its 4 annotated corners (upright), or by its "
                               "bounding box as CCPD2019-dl1 crops are (tilted, tight)")
    ccpd_split: Literal["hash", "official"] = Field(
        "hash", description="CCPD2019 photos in data.source (and plate evaluate --data): split by a hash of the file "
                            "name (hash), or by CCPD2019's own splits/train.txt, val.txt and test.txt (official: "
                            "ccpd_base trains, the other subsets test); train_sources and eval_sets split by hash")
    resize_crops: tuple[int, int] | None = Field(
        None, description="Resize every crop to [width, height] before preprocessing, e.g. [94, 24] to read what "
                          "a low-resolution camera gives (LPRNet's input size); null = as they are")


class PreprocessConfig(_Section):
    height: int = Field(48, ge=8, le=512, description="Model input height in pixels")
    width: int = Field(144, ge=16, le=1024, description="Model input width in pixels")
    grayscale: bool = Field(True, description="Single-channel input (the seed's choice) or BGR colour")

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


class AugmentConfig(_Section):
    enabled: bool = Field(False, description="Batch augmentation during training (on for real crops)")
    rotate_deg: float = Field(4.0, ge=0, le=45, description="Max rotation in degrees")
    shear: float = Field(0.15, ge=0, le=1, description="Max horizontal shear")
    scale: float = Field(0.08, ge=0, le=0.5, description="Max relative zoom in/out")
    translate: float = Field(0.04, ge=0, le=0.5, description="Max shift as a fraction of the size")
    brightness: float = Field(0.25, ge=0, le=1, description="Max brightness change")
    contrast: float = Field(0.3, ge=0, le=1, description="Max contrast change")
    noise: float = Field(0.03, ge=0, le=0.5, description="Max Gaussian noise sigma (images in 0..1)")
    adverse: float = Field(0.0, ge=0, le=1, description="Share of plates put under one adverse condition drawn "
                           "evenly: motion blur, defocus or darkness (real crops lack them; the generator draws its "
                           "own); 0 = none")
    motion_blur: float = Field(0.07, ge=0, le=0.3, description="adverse: longest motion-blur streak, a share of the "
                               "width (drawn from a fifth of it up, within 30° of horizontal)")
    defocus: float = Field(0.05, ge=0, le=0.3, description="adverse: largest defocus blur sigma, a share of the "
                           "height (drawn from a third of it up)")
    darken: float = Field(0.12, gt=0, le=1, description="adverse: lowest exposure gain of a darkened plate (drawn "
                          "up to 0.6), with sensor noise of sigma 0.02")
    colour: float = Field(0.0, ge=0, le=0.5, description="Colour input only: a camera's colour response per plate, "
                          "white-balance gains of 1 ± colour per channel and saturation scaled by 1 ± 2·colour; 0 = none")


class ModelConfig(_Section):
    name: str = Field("small_crnn_lite", description="A registered model: see `plate models`")
    hidden: int = Field(128, ge=8, le=2048, description="Recurrent hidden size per direction")
    ctc_steps: int = Field(18, ge=15, le=128, description="CTC time steps; >= 15 lets any 8-character plate through")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the heads")
    norm: Literal["batch", "group"] = Field("batch", description="small_crnn(_lite) normalisation: batch, or group "
                                           "(per-plate statistics: bit-for-bit the same under multi-process training)")


class TrainingConfig(_Section):
    epochs: int = Field(10, ge=1, description="Passes over the training split")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps (smoke runs)")
    epoch_plates: int | None = Field(None, ge=1, description="Plates drawn per epoch; null = the training set's "
                                     "size. Keeps a mixed recipe's steps when a source grows (data.train_sources)")
    batch_size: int = Field(64, ge=1, description="Plates per step (global under torchrun)")
    lr: float = Field(5e-3, gt=0, description="Peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    optimizer: Literal["adam", "adamw"] = Field("adamw", description="adam (the seed's) or adamw")
    warmup_steps: int = Field(100, ge=0, description="Linear warm-up before the cosine decay")
    grad_clip: float = Field(5.0, gt=0, description="Gradient-norm clip (the seed used 0.05)")
    keep_epochs: bool = Field(False, description="Also keep each epoch's weights as epoch<N>.pt in the run folder "
                              "(for `plate average`)")
    province_weights: bool = Field(False, description="Class-weight the province loss by inverse training frequency (** 0.5)")
    amp: bool = Field(True, description="Mixed precision on CUDA (ignored on the CPU)")
    channels_last: bool = Field(True, description="channels_last memory format (faster convolutions on CUDA and CPU)")
    num_workers: int = Field(0, ge=0, description="DataLoader workers (arrays are pre-decoded, so 0 is fine on a CPU)")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = all cores")
    out_dir: str = Field("runs", description="Runs go to <out_dir>/<run.name>/")
    init_from: str | None = Field(None, description="Start from this checkpoint's weights (fine-tuning)")
    eval_batch_size: int = Field(128, ge=1, description="Plates per evaluation batch (plate predict reads files in "
                                 "batches of it); on a 2-core CPU 128 reads 1.1-1.6x faster than 256, whose "
                                 "activations overflow the cache (benchmarks/batch.py)")


class PredictConfig(_Section):
    """How ``plate predict`` reports a reading; read from cfg.yaml (or --config, --profile, --set), not from the
    checkpoint, and never part of what a training run is compared by."""

    min_confidence: float = Field(0.12, ge=0, le=1, description="A reading below this confidence is "
                                  "low_confidence (benchmarks/confidence.py measures where to put it for a model)")
    crop_aspect: tuple[float, float] = Field((0.9, 8.0), description="[min, max] width/height of an image read as "
                                             "a plate crop; outside it, not_a_crop (not read)")
    max_crop_height: int = Field(400, ge=8, description="An image taller than this (pixels) and shaped like a "
                                 "photo (width/height below predict.PHOTO_ASPECT, 2.4) is not_a_crop (not read): a "
                                 "whole photo, not a plate crop; a plate-shaped close-up is read at any size")
    find_in_photos: bool = Field(True, description="An image shaped like a whole photo (not_a_crop by "
                                 "crop_aspect and max_crop_height) is searched for the plate by its colour "
                                 "(rectify.photo_boxes) and the surest reading of what is found kept, with its box; "
                                 "false: such an image is not_a_crop, not read (benchmarks/photos.py)")
    rectify_below: float = Field(0.95, ge=0, le=1, description="Read a crop again warped level (rectify.py: the "
                                 "plate found by its colour, its rectangle straightened) when its least sure "
                                 "character (province included) has a probability below this, and keep the more "
                                 "confident reading; 0 = never, 1 = always (0.95 chosen on the real sets' train "
                                 "and val splits: benchmarks/second_look.py)")
    tta: bool = Field(False, description="Test-time views: a crop below rectify_below is also read padded by 6 % "
                      "of its height and cut by 4 % of its height and 2 % of its width (each with its own second "
                      "look), and the plate whose three readings' confidences sum highest is kept: a point or two on "
                      "hard crops for 1.1-2.5x the batched time (benchmarks/tta.py)")
    by_colour: bool = Field(True, description="Decode by the crop's colour (colours.py; the network reads "
                            "grayscale): a green crop as an 8-character new-energy plate and a blue one as a "
                            "7-character plate, where the network's beam search holds a plate of that length "
                            "(docs/experiments.md, \"Colour-aware decoding\")")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="What runs the network when reading: auto (ONNX Runtime on the CPU where it is "
        "installed, else PyTorch), torch, or onnx (ONNX Runtime on the CPU: the same readings, about 4x faster one "
        "plate at a time and 1.3-1.8x batched; pip install 'plate_lib[export]')")

    @field_validator("crop_aspect")
    @classmethod
    def _aspect(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1]:
            raise ValueError(f"expected [min, max] width/height with 0 < min < max, got {list(v)}")
        return v


class Config(_Section):
    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    augment: AugmentConfig = AugmentConfig()
    synth: SynthConfig = SynthConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    predict: PredictConfig = PredictConfig()
    provinces: list[str] = Field(default_factory=lambda: list(PROVINCES), description="Province classes, in order")

    @model_validator(mode="after")
    def _provinces(self) -> Config:
        bad = [p for p in self.provinces if len(p) != 1]
        if bad or len(set(self.provinces)) != len(self.provinces) or not self.provinces:
            raise ValueError(f"provinces must be distinct single characters, got {self.provinces}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- loading --------------------------------------------------------------------------------------------


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{origin}: unknown key {key!r}; check the spelling against cfg.yaml")
        else:
            got = e.get("input")
            hint = ""
            if e["type"] == "string_type" and isinstance(got, (int, float, bool)):
                kind = type(got).__name__
                hint = (f" (YAML read the value as {'an' if kind[0] in 'aeiou' else 'a'} {kind}: quote it to keep it text, "
                        f"e.g. --set {key}=\"'007'\")")
            elif e["type"] in ("tuple_type", "list_type") and not isinstance(got, (list, tuple)):
                hint = f" (a list in YAML: e.g. --set {key}=[0.9,8])"
            lines.append(f"{origin}: {key} {e['msg'].lower()}, got {got!r}{hint}")
    return "\n".join(lines)


def parse_override(item: str) -> tuple[str, Any]:
    """``"training.epochs=3"`` → ``("training.epochs", 3)``; the value is read as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. training.epochs=3")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
    return key.strip(), value


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict; a key that names no section is reported with the known ones."""
    out = copy.deepcopy(raw)
    for dotted, value in flatten_sections(overrides).items():  # training: {epochs: 3} sets epochs, not the section
        parts = dotted.split(".")
        node, schema = out, Config
        for depth, part in enumerate(parts):
            fields = schema.model_fields if isinstance(schema, type) and issubclass(schema, BaseModel) else {}
            if part not in fields:
                where = ".".join(parts[:depth]) or "the top level"
                raise ConfigError(f"override {dotted!r}: unknown key {part!r} in {where}; known: {sorted(fields)}")
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:depth + 1])} is not a section")
                schema = fields[part].annotation
    return out


def _section(annotation: Any) -> type[BaseModel] | None:
    """The config section a field's annotation is, else None (a value, such as a list or a dict of values)."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def from_dict(raw: Mapping[str, Any], origin: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin)) from None


def read_yaml(p: Path) -> Any:
    """A YAML file's content; a file that is not UTF-8 or not YAML is a ``ConfigError`` naming it."""
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile: a YAML mapping of dotted keys to values (``profiles/*.yaml``), applied as overrides."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"profile {p} not found; see profiles/ for the shipped ones")
    raw = read_yaml(p)
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"profile {p}: expected a mapping of dotted keys to values, e.g. training.epochs: 3")
    return raw


def read_profiles(paths: str | Path | Iterable[str | Path] | None) -> dict[str, Any]:
    """One profile, or several merged in order (a later one's keys win); None: no overrides."""
    if paths is None:
        return {}
    merged: dict[str, Any] = {}
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        merged.update(flatten_sections(read_profile(p)))
    return merged


def config_changes(stored: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys whose values differ between two configs as ``Config.to_dict`` gives them (``provinces`` for
    the province list), leaving out the sections and keys in ``ignore`` (``predict``, ``training.threads``)."""
    changed = []
    for section in sorted(set(stored) | set(now)):
        if section in ignore:
            continue
        old, new = stored.get(section), now.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [f"{section}.{k}" for k in sorted(set(old) | set(new))
                        if f"{section}.{k}" not in ignore and old.get(k) != new.get(k)]
        elif old != new:
            changed.append(section)
    return changed


def collect_overrides(data: str | None = None, profile: str | Path | Iterable[str | Path] | None = None,
                      sets: Iterable[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Dotted-key overrides in order of precedence: profiles, then ``data.source``, then ``--set`` items."""
    overrides = read_profiles(profile)
    if data:
        overrides["data.source"] = data
    overrides.update(flatten_sections(sets if isinstance(sets, Mapping) else dict(map(parse_override, sets or []))))
    return overrides


def flatten_sections(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with each value given to a whole config section (``training: {epochs: 3}``) spelt as the dotted
    keys it names (``training.epochs: 3``), so that stacked profiles and ``--set`` items each set only their keys;
    any other key as it is (an unknown one is named when the overrides are applied)."""
    out: dict[str, Any] = {}

    def walk(dotted: str, value: Any, schema: Any) -> None:
        if isinstance(value, Mapping) and _section(schema) is not None:
            fields = schema.model_fields
            for key, v in value.items():
                field = fields.get(key) if isinstance(key, str) else None
                walk(f"{dotted}.{key}", v, field.annotation if field is not None else None)
        else:
            out[dotted] = value

    for dotted, value in overrides.items():
        schema: Any = Config
        for part in dotted.split("."):
            field = schema.model_fields.get(part) if _section(schema) is not None else None
            schema = field.annotation if field is not None else None
        walk(dotted, value, schema)
    return out


def config_file(name: str) -> str | None:
    """``--config NAME`` as ``load`` takes it: the default ``cfg.yaml`` means the built-in defaults when it is
    absent; any other name must exist."""
    return name if Path(name).is_file() or name != "cfg.yaml" else None


def load(path: str | Path | None = "cfg.yaml", overrides: Iterable[str] | Mapping[str, Any] = ()) -> Config:
    """Load and validate ``path`` (None: the defaults), then apply overrides (``"k=v"`` strings or a mapping)."""
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        p = Path(path)
        origin = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found; pass --config PATH or run from the project root")
        raw = read_yaml(p)
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level, got {type(raw).__name__}")
        dotted = [k for k in raw if isinstance(k, str) and "." in k]
        if dotted:
            raise ConfigError(f"{p}: its keys are dotted ({', '.join(dotted[:3])}): a profile of overrides, not a "
                              f"config; pass it with --profile {p} (a config nests them: training: {{epochs: 3}})")
    if not isinstance(overrides, Mapping):
        overrides = dict(parse_override(o) for o in overrides)
    if overrides:
        raw = apply_overrides(raw, overrides)
        origin = f"{origin} with overrides"
    return from_dict(raw, origin)
