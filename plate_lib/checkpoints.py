"""Checkpoints: data, not code. Writing, reading and checking the ``.pt`` files that runs leave and models ship in.

A checkpoint is a dict of tensors and plain Python data (dict, list, tuple, str, int, float, bool, None): the
weights, the resolved config, the alphabet, the spec the model is rebuilt from and, in ``last.pt`` and
``resume.pt``, the training state (optimiser, RNG states as tensors and lists). ``save_checkpoint`` refuses
anything else, so every file it writes loads with ``torch.load(..., weights_only=True)``, and
``read_checkpoint`` loads every file that way: a pickle that would build other objects (and could run code)
is refused with a message that says why. Arrays of numbers that earlier versions stored for NumPy's RNG state
are still read, as data. ``convert_checkpoint`` rewrites an older checkpoint the safe loader refuses; it
unpickles the file in full and is only for files the user made or trusts.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, from_dict
from .errors import CheckpointError
from .files import atomic_write
from .models import ModelError, ModelSpec, build_model
from .plates import BLANK, SYMBOLS

log = logging.getLogger(__name__)

FORMAT = "plate_lib/1"
REQUIRED_KEYS = {"model_name": str, "spec": dict, "config": dict, "alphabet": dict, "model": dict}
PLAIN = (str, int, float, bool, type(None))


def model_spec(cfg: Config) -> ModelSpec:
    return ModelSpec(
        in_channels=cfg.preprocess.channels, height=cfg.preprocess.height, width=cfg.preprocess.width,
        n_provinces=len(cfg.provinces), n_ctc_classes=len(SYMBOLS) + 1, hidden=cfg.model.hidden,
        ctc_steps=cfg.model.ctc_steps, dropout=cfg.model.dropout, norm=cfg.model.norm,
    )


def as_data(value: Any, where: str = "checkpoint") -> Any:
    """``value`` as tensors (on the CPU) and plain Python data, what ``weights_only=True`` loads: NumPy arrays
    become lists, NumPy scalars Python numbers, paths strings. Anything else is a ``TypeError`` naming where it
    sits (``where``), so no object that needs code to rebuild ever reaches a checkpoint."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in PLAIN:
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {as_data(k, f"a key of {where}"): as_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [as_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds tensors "
                    "and plain data (dict, list, tuple, str, int, float, bool, None) only")


def _write(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getbuffer()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write, nbytes=len(data))


def save_checkpoint(path: str | Path, model: torch.nn.Module, cfg: Config, **extra: Any) -> None:
    """Write atomically (temporary file, flushed to disk, then renamed): the weights, the config, the alphabet
    and ``extra`` (training state), all as data (``as_data``). A crash or a full disk leaves the previous file
    or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "model_name": cfg.model.name,
        "spec": asdict(model_spec(cfg)),
        "config": cfg.to_dict(),
        "alphabet": {"provinces": list(cfg.provinces), "symbols": SYMBOLS, "blank": BLANK},
        "model": model.state_dict(),
        **extra,
    }
    _write(path, as_data(state))


# --- reading ----------------------------------------------------------------------------------------------


def _numpy_numbers() -> list:
    """What NumPy arrays and scalars of numbers unpickle through: earlier plate_lib versions stored NumPy's RNG
    state as an array. Object arrays are not among them (their dtype is not listed), so this is data only."""
    core = getattr(np, "_core", None) or np.core
    mult = core.multiarray
    dtypes = sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}, key=str)
    aliases = [(f, f"{mod}.multiarray.{f.__name__}") for f in (mult._reconstruct, mult.scalar)
               for mod in ("numpy.core", "numpy._core")]
    return [mult._reconstruct, mult.scalar, np.ndarray, np.dtype, *dtypes, *aliases]


def _why_refused(path: Path, err: Exception) -> str:
    """What a refused file holds beyond data: the objects it names (read statically, nothing is run), else what
    the safe loader stopped at."""
    allowed = {f[1] if isinstance(f, tuple) else f"{f.__module__}.{f.__qualname__}" for f in _numpy_numbers()}
    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in allowed]
    except Exception:  # not a torch zip file: take what the unpickler said
        names = re.findall(r"GLOBAL (\S+)", str(err))
    if names:
        return f"it needs Python objects rebuilt ({', '.join(sorted(set(names))[:5])})"
    after = str(err).split("WeightsUnpickler error:", 1)[-1]
    detail = next((ln.strip() for ln in after.splitlines() if ln.strip()), "")
    return f"the safe loader stops at: {detail[:150]}" if detail else "it holds more than tensors and plain data"


def _refused(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is refused: {_why_refused(path, err)}. A checkpoint must hold only tensors and plain "
        "data, because loading anything else can run code; plate_lib writes nothing else. If it is a checkpoint of "
        f"an older plate_lib that you made yourself or trust, convert it once with `plate convert-checkpoint {path} "
        "NEW.pt` (that loads it in full: never convert a file you do not trust)")


def _check(ckpt: Any, path: Path) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a plate_lib checkpoint (no 'format: {FORMAT}' entry); "
                              "pass one written by `plate train`")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it is damaged or from another tool")
    wrong = [f"{k} ({type(ckpt[k]).__name__}, expected {t.__name__})" for k, t in REQUIRED_KEYS.items()
             if not isinstance(ckpt[k], t)]
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt["model"].items()):
        wrong.append("model (expected names and tensors)")
    if wrong:
        raise CheckpointError(f"checkpoint {path} holds the wrong kind of data in {', '.join(wrong)}; "
                              "it is damaged or from another tool")
    if ckpt["alphabet"].get("symbols") != SYMBOLS:
        symbols = ckpt["alphabet"].get("symbols")
        shown = "".join(symbols) if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols) else symbols
        raise CheckpointError(f"{path} was trained with another symbol alphabet ({shown}; "
                              f"this plate_lib reads {''.join(SYMBOLS)}); retrain, or use this plate_lib's checkpoints")
    return ckpt


TORCH_MAGIC = b"PK\x03\x04"  # torch.save writes a zip; older files are a bare pickle (b"\x80" and the protocol)


def read_checkpoint(path: str | Path, fix: str = "train again with `plate train`, or use another checkpoint") -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``; a missing, truncated, foreign, unsafe or
    other-alphabet file is a ``CheckpointError``, whose message ends with ``fix`` (what to do) where the file
    cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; train one with `plate train` or pass --checkpoint")
    with path.open("rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise CheckpointError(f"checkpoint {path} cannot be read: it is truncated ({len(head)} bytes). To go on: {fix}")
    if not (head.startswith(TORCH_MAGIC) or head[:1] == b"\x80"):  # neither torch's zip nor its legacy pickle
        onnx = ("; an ONNX graph? plate_lib reads .pt checkpoints and exports their graphs for ONNX Runtime itself "
                "(predict.runtime)") if path.suffix.lower() == ".onnx" else ""
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with {head!r}; a plate_lib "
                              f"checkpoint is a .pt file written by `plate train`){onnx}. To go on: {fix}")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_numbers()):
            warnings.simplefilter("ignore")  # "Detected pickle protocol 4" and the like
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise _refused(path, e) from None
        raise _unreadable(path, e, fix) from None
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise _unreadable(path, e, fix) from None
    try:
        ckpt = as_data(ckpt, str(path))
    except TypeError as e:  # e.g. a torch.dtype, which the safe loader allows but no plate_lib checkpoint holds
        raise CheckpointError(f"checkpoint {path} holds the wrong kind of data: {e}; it is from another tool") from None
    except RecursionError:  # data nested thousands deep: no checkpoint is, a crafted file may be
        raise CheckpointError(f"checkpoint {path} holds data nested too deep for a checkpoint; it is from another "
                              "tool, or damaged") from None
    return _check(ckpt, path)


def _unreadable(path: Path, e: Exception, fix: str) -> CheckpointError:
    why = str(e).strip().split(". ")[0].splitlines()[0][:200] if str(e).strip() else ""
    return CheckpointError(f"checkpoint {path} cannot be read: it is truncated or not a plate_lib checkpoint "
                           f"({type(e).__name__}: {why}). To go on: {fix}")


def check_fits(ckpt: dict[str, Any], cfg: Config, what: str) -> None:
    """Refuse a checkpoint of another model or province list than ``cfg`` trains (``what`` names its role)."""
    provinces = ckpt["alphabet"]["provinces"]
    if ckpt["model_name"] != cfg.model.name or provinces != list(cfg.provinces):
        raise CheckpointError(f"{what} holds a {ckpt['model_name']} over {len(provinces)} provinces "
                              f"({''.join(provinces)}); this run trains {cfg.model.name} over {len(cfg.provinces)} "
                              f"({''.join(cfg.provinces)}). Use a checkpoint of the same model and provinces, or "
                              "another run.name")


def load_weights(model: torch.nn.Module, ckpt: dict[str, Any], what: str) -> None:
    """``model.load_state_dict`` with a ``CheckpointError`` instead of PyTorch's size-mismatch dump."""
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{what} does not fit this model's sizes (model.*, preprocess.*): "
                              f"{' '.join(first[:3])[:300]}") from None


def rebuild(ckpt: dict[str, Any], path: str | Path) -> tuple[torch.nn.Module, Config]:
    """The model a checkpoint describes, with its weights, and its stored config (no cfg.yaml needed). The
    sizes come from the stored config, which is validated, and must match the stored spec."""
    cfg = from_dict(ckpt["config"], origin=f"{path} (stored config)")
    try:
        spec = ModelSpec(**ckpt["spec"])
    except TypeError as e:
        raise CheckpointError(f"checkpoint {path} has a model spec this plate_lib cannot read: {e}") from None
    if spec != model_spec(cfg):
        raise CheckpointError(f"checkpoint {path}: its model spec {asdict(spec)} does not match its stored config "
                              f"({asdict(model_spec(cfg))}); it is damaged or was edited")
    try:
        model = build_model(ckpt["model_name"], spec)
    except ModelError as e:
        raise CheckpointError(f"checkpoint {path} names a model this plate_lib cannot build: {e}") from None
    load_weights(model, ckpt, f"checkpoint {path}")
    return model, cfg


# --- averaging a run's checkpoints ----------------------------------------------------------------------------


def average_checkpoints(paths: list[str | Path], out: str | Path) -> Path:
    """The checkpoints ``paths`` of one model (the same ``model_name``, ``spec`` and alphabet, every tensor the
    same shape), written to ``out`` with each float tensor the mean of theirs, batch-norm statistics included
    (integer tensors, such as batch norm's step counts, from the last): checkpoint averaging, as of the epochs of
    one fine-tuning run (``training.keep_epochs``; docs/experiments.md, "Weight averaging"). Its config, alphabet
    and ``epoch`` are the last checkpoint's; ``averaged_from`` names the files. No training state is kept."""
    if len(paths) < 2:
        missing = [str(p) for p in paths if not Path(p).is_file()]
        raise CheckpointError(f"averaging takes two checkpoints or more, got {len(paths)}"
                              + (f" ({missing[0]}: no such file; did a pattern match nothing?)" if missing else ""))
    twice = sorted({str(p) for p in paths if sum(Path(q).resolve() == Path(p).resolve() for q in paths) > 1})
    if twice:
        raise CheckpointError(f"{twice[0]} is given twice: each checkpoint counts once in a mean")
    ckpts = [read_checkpoint(p) for p in paths]
    first, last = ckpts[0], ckpts[-1]
    for path, ck in zip(paths[1:], ckpts[1:], strict=True):
        for key in ("model_name", "spec", "alphabet"):
            if ck[key] != first[key]:
                mine, theirs = ck[key], first[key]
                if key == "alphabet":  # the provinces (the symbols are checked on reading)
                    mine, theirs = ("".join(a.get("provinces", [])) for a in (ck[key], first[key]))
                raise CheckpointError(f"{path} is not the same model as {paths[0]}: its {key} differs "
                                      f"({mine} against {theirs}); average checkpoints of one run")
        if ck["model"].keys() != first["model"].keys() or any(
                v.shape != first["model"][k].shape or v.dtype != first["model"][k].dtype for k, v in ck["model"].items()):
            raise CheckpointError(f"{path} holds other tensors than {paths[0]}; average checkpoints of one run")
    runs = sorted({str((ck["config"].get("run") or {}).get("name")) for ck in ckpts})
    if len(runs) > 1:
        log.warning("averaging checkpoints of %d runs (run.name %s): a mean of one run's epochs is what was measured "
                    "(docs/experiments.md, \"Weight averaging\")", len(runs), ", ".join(runs))
    weights = {}
    for k, v in last["model"].items():
        if v.is_floating_point():
            total = first["model"][k].clone()
            for ck in ckpts[1:]:
                total += ck["model"][k]
            weights[k] = total / len(ckpts)
        else:
            weights[k] = v
    state = {key: last[key] for key in ("format", "model_name", "spec", "config", "alphabet")}
    state.update(model=weights, epoch=last.get("epoch"), averaged_from=[Path(p).name for p in paths])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, as_data(state))
    return out


# --- converting an older checkpoint ---------------------------------------------------------------------------


def convert_checkpoint(old: str | Path, new: str | Path) -> Path:
    """Rewrite a plate_lib checkpoint that ``read_checkpoint`` refuses as data only (``as_data``), so that it loads
    with ``weights_only=True``; the result is read back to prove it.

    This unpickles ``old`` in full (``weights_only=False``, the one place plate_lib does), which runs whatever code
    the file holds: use it only on a file you made yourself or trust."""
    old, new = Path(old), Path(new)
    if not old.is_file():
        raise CheckpointError(f"checkpoint {old} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(old, map_location="cpu", weights_only=False)  # trusted by the caller: see above
    except Exception as e:
        raise _unreadable(old, e, "there is nothing to convert") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{old} is not a plate_lib checkpoint (no 'format: {FORMAT}' entry); nothing converted")
    try:
        state = as_data(ckpt, str(old))
    except TypeError as e:
        raise CheckpointError(f"{old} cannot be converted: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{old} cannot be converted: its data is nested too deep for a checkpoint") from None
    new.parent.mkdir(parents=True, exist_ok=True)
    _write(new, state)
    try:
        read_checkpoint(new)
    except CheckpointError:  # no file left behind that plate_lib then refuses
        new.unlink(missing_ok=True)
        raise
    return new

