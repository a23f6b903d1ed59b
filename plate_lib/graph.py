"""The network as an ONNX graph, run by ONNX Runtime with no torch: ``OnnxReader``, what ``reading`` reads with
(``export.OnnxModel`` is one, built from a PyTorch model), and a cache of the graphs exported from checkpoints.

``plate predict`` on a CPU reads through ONNX Runtime (``predict.runtime``), and exporting the checkpoint's model
takes PyTorch: importing torch alone took 2.8-3.6 s of the CLI's 4.3-5.3 s start-up on this project's 2-core VM.
So the graph exported from a checkpoint is kept, with the checkpoint's config, under ``cache_dir()`` (named by
a SHA-256 of the checkpoint's bytes); ``plate predict`` (and ``plate evaluate``) find it there the next time and
read with it, torch never imported (README, "Reading plates"). ``PLATE_LIB_CACHE=off`` keeps nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import __version__
from .config import Config, ConfigError, from_dict
from .errors import DiskFullError
from .files import atomic_write

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

PART_PLATES = 16  # a reader's part_plates by default: with n threads, a batch is read in parts of at most this
# many plates on n one-thread workers (8-64 read level; 0: whole, by one session of n threads: benchmarks/batch.py)
GRAPH_FORMAT = 1  # what export.onnx_graph writes; a change to it bumps this, and graphs cached before are not used
CACHE_ENV = "PLATE_LIB_CACHE"  # where graphs are cached ("off": nowhere); default $XDG_CACHE_HOME/plate_lib
KEEP_GRAPHS = 8  # the cache keeps the graphs of this many checkpoints, those read most recently (1.6 MB each)
GPU_SIGNS = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")  # NVIDIA, WSL2 and ROCm drivers


def default_threads() -> int:
    """Threads to read with where torch does not say: ``OMP_NUM_THREADS`` if set, else the CPUs this process
    may run on (what torch takes on a machine without hyper-threading)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxReader:
    """A serialised ONNX graph (``export.onnx_graph``: uint8 letterboxed crops / 255 in, province and CTC logits
    out) run by ONNX Runtime on the CPU, with a session per thread count. ``threads``: how many to read with
    (default ``default_threads()``); ``in_parts`` spreads a batch over them, in parts of at most ``part_plates``
    (0: a batch whole, on one session of n threads)."""

    def __init__(self, graph: bytes, part_plates: int = PART_PLATES, threads: int | None = None):
        try:
            import onnxruntime
        except ModuleNotFoundError:
            raise ConfigError("predict.runtime onnx needs ONNX Runtime: pip install 'plate_lib[export]' "
                              "(or onnxruntime), or set predict.runtime=torch") from None
        self._ort = onnxruntime
        self.graph = graph
        self.part_plates = part_plates
        self.n_threads = threads or default_threads()
        self._sessions: dict[int, object] = {}
        self._pools: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads) → in_parts' workers
        self._local = threading.local()  # .worker: this thread is one of in_parts' workers

    def session(self, threads: int):
        if threads not in self._sessions:
            opts = self._ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self._sessions[threads] = self._ort.InferenceSession(self.graph, opts, providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def cores(self) -> int:
        """The threads to read with (``export.OnnxModel``: ``torch.get_num_threads()``)."""
        return self.n_threads

    def threads(self) -> int:
        """The session's threads here: ``cores()``, and 1 on one of ``in_parts``' workers."""
        return 1 if getattr(self._local, "worker", False) else self.cores()

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [B, C, H, W] in 0..1 → province and CTC logits, as numpy arrays, on the session of
        ``threads()`` threads."""
        return tuple(self.session(self.threads()).run(None, {"images": images}))

    def run_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [B, H, W, C] (letterboxed) → province and CTC logits, with no torch tensor between: what
        ``reading.predict_images`` calls (on one plate, the conversions to and from torch cost a seventh of the
        read). A batch goes ``in_parts``."""
        images = np.asarray(images)
        outs = self.in_parts(lambda part: self.run(np.ascontiguousarray(part.transpose(0, 3, 1, 2), np.float32) / 255),
                             images)
        return outs[0] if len(outs) == 1 else tuple(np.concatenate(parts_k) for parts_k in zip(*outs, strict=True))

    def in_parts(self, read: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``read`` of each part of ``items`` (plates), in order. With n threads, two plates or more go in parts of
        at most ``part_plates`` to n workers, each reading its parts on a one-thread session (ONNX Runtime and
        OpenCV let go of the GIL), rather than whole to one n-thread session that spreads each small layer over
        the cores: on this project's 2-core CPU whole batched reads are 1.1-1.3× faster so
        (``benchmarks/batch.py``), with the same readings. ``reading.read_crops`` reads raw crops so, end to
        end (letterbox, network, decoding, second look); ``run_images`` letterboxed ones, through the network.
        One plate, ``part_plates`` 0, one thread or a call from a worker: ``[read(items)]``, here."""
        threads = self.threads()
        if threads < 2 or len(items) < 2 or self.part_plates == 0:
            return [read(items)]
        parts = min(len(items), threads * -(-len(items) // (threads * self.part_plates)))  # no empty part
        bounds = np.linspace(0, len(items), parts + 1).round().astype(int).tolist()
        self.session(1)  # made here, once, not by the workers at the same time
        key = (os.getpid(), threads)  # a forked child makes its own workers: its parent's threads are not there
        pool = self._pools.get(key) or self._pools.setdefault(
            key, ThreadPoolExecutor(threads, "plate_lib-onnx", initializer=setattr, initargs=(self._local, "worker", True)))
        return list(pool.map(lambda ab: read(items[ab[0]:ab[1]]), pairwise(bounds)))


# --- the cache of exported graphs -------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Where exported graphs are kept: ``$PLATE_LIB_CACHE``, else ``$XDG_CACHE_HOME/plate_lib/graphs``, else
    ``~/.cache/plate_lib/graphs``; None where ``PLATE_LIB_CACHE`` is ``off``."""
    env = os.environ.get(CACHE_ENV, "")
    if env.lower() in ("off", "0", "false", "no"):
        return None
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plate_lib" / "graphs"


GRAPH_NAME = re.compile(r"^[0-9a-f]{32}-g[0-9a-f]+\.onnx$")  # graph_key's names: no other file is pruned
GRAPH_TMP = re.compile(r"^\.[0-9a-f]{32}-g[0-9a-f]+\.(onnx|json)\.[0-9]+\.tmp$")  # one being written (files.atomic_write)


def _graph_code() -> bytes:
    """The source of what makes a checkpoint's graph (the networks, the export): a change to it is another graph."""
    here = Path(__file__).parent
    return b"".join((here / name).read_bytes() for name in ("models.py", "export.py"))


def graph_key(checkpoint: str | Path) -> str:
    """A cached graph's name: the SHA-256 of the checkpoint's bytes (wherever it lies) and of the code that exports
    it (``_graph_code``: another plate_lib's graph is not served), and ``GRAPH_FORMAT``."""
    digest = hashlib.sha256(_graph_code())
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{digest.hexdigest()[:32]}-g{GRAPH_FORMAT}"


def store(checkpoint: str | Path, graph: bytes, cfg: Config, key: str | None = None) -> Path | None:
    """Keep ``graph``, exported from ``checkpoint`` whose config is ``cfg``, for ``cached_reader``; the graph's
    path, or None where there is no cache (``PLATE_LIB_CACHE=off``) or it cannot be written (said in the log at
    debug level: reading goes on, exporting again next time). Each file is written whole, then renamed
    (``files.atomic_write``: a full disk leaves no part of one behind); the graphs beyond the ``KEEP_GRAPHS`` read
    most recently are removed. ``key``: ``graph_key(checkpoint)`` where the caller has it already."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        key = key or graph_key(checkpoint)
        onnx_path = folder / f"{key}.onnx"
        meta = {"format": GRAPH_FORMAT, "plate_lib": __version__, "checkpoint": str(checkpoint),
                "config": cfg.to_dict()}
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in ((onnx_path, graph), (folder / f"{key}.json",
                                                 json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))):
            atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data), nbytes=len(data))
        kept = sorted((p for p in folder.glob("*.onnx") if GRAPH_NAME.match(p.name)),  # its own files only
                      key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP_GRAPHS:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
        for tmp in folder.glob(".*.tmp"):  # left by a start killed while it wrote (atomic_write's names), a day on
            with contextlib.suppress(OSError):  # renamed into place by another start meanwhile
                if GRAPH_TMP.match(tmp.name) and time.time() - tmp.stat().st_mtime > 86400:
                    tmp.unlink()
        return onnx_path
    except (OSError, DiskFullError) as e:
        log.debug("graph cache: not kept (%s)", e)
        return None


def cached_reader(checkpoint: str | Path, part_plates: int = PART_PLATES,
                  key: str | None = None) -> tuple[OnnxReader, Config, Path] | None:
    """The graph ``store`` kept for ``checkpoint`` (the same bytes), as an ``OnnxReader``, with the checkpoint's
    config and the graph's path; None where none is kept. A kept graph that cannot be read (a file cut short, a
    config this version does not accept) is said in the log and passed over: the caller exports again. ``key``:
    ``graph_key(checkpoint)`` where the caller has it already."""
    folder = cache_dir()
    if folder is None:
        return None
    key = key or graph_key(checkpoint)
    onnx_path, meta_path = folder / f"{key}.onnx", folder / f"{key}.json"
    if not (onnx_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise ValueError("not an object with a config")
        if meta.get("format") != GRAPH_FORMAT:
            return None
        cfg = from_dict(meta["config"], str(meta_path))
        graph = onnx_path.read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as e:  # ConfigError and JSON's errors are ValueErrors
        log.warning("graph cache: %s not used (%s: %s); exporting the checkpoint again", meta_path,
                    type(e).__name__, e)
        return None
    reader = OnnxReader(graph, part_plates)  # without ONNX Runtime: the error that says to install it
    try:
        reader.session(reader.threads())  # an unreadable graph fails here, not on the first plate
    except Exception as e:  # noqa: BLE001 (ONNX Runtime raises its own kinds for a bad graph)
        log.warning("graph cache: %s not used (%s: %s); exporting the checkpoint again", onnx_path,
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return None
    with contextlib.suppress(OSError):  # a cache it may read but not write is still read
        os.utime(onnx_path)  # read now: the last the cache lets go (store)
    return reader, cfg, onnx_path


def open_reader(checkpoint: str | Path, device: str = "auto", runtime: str = "auto"):
    """A checkpoint ready to read with: (model, its config, the device), for ``reading.read_plates``. Where
    ONNX Runtime on the CPU is what reads (``runtime`` onnx or auto, and ``device`` cpu, or auto on a machine
    with no GPU driver: ``gpu_visible``) and the graph exported from the same checkpoint is cached
    (``cached_reader``), its ``OnnxReader``, torch never imported; else ``inference.load_reader`` (PyTorch, or
    ``export.OnnxModel``, whose graph is then cached for the next time: ``store``). What ``plate predict`` and
    ``plate evaluate`` read with::

        model, cfg, _ = open_reader("models/plate_default.pt")
        read_plates(model, cfg, [cv2.imread("crop.jpg")])  # [(plate, confidence)]
    """
    import importlib.util

    checkpoint = Path(checkpoint)
    key = None  # the checkpoint's hash, once: looked up in the cache, then the key its graph is stored under
    state = None  # the file as it was hashed: one replaced after (a run writing it) is not stored under the old key
    if (runtime != "torch" and (device == "cpu" or (device == "auto" and not gpu_visible()))
            and checkpoint.is_file()  # missing, a folder: the checkpoint loader below says what is wrong
            and importlib.util.find_spec("onnxruntime") is not None):
        state = _file_state(checkpoint)
        key = graph_key(checkpoint) if cache_dir() is not None else None  # no cache (off): no hash
        found = cached_reader(checkpoint, key=key)
        if found is not None:
            reader, cfg, path = found
            log.info("runtime: onnx on cpu (predict.runtime; the graph exported from this checkpoint before: %s)", path)
            return reader, cfg, "cpu"
    from .inference import load_reader, pick_device

    torch_device = pick_device(device)
    model, cfg = load_reader(checkpoint, torch_device, runtime)
    if getattr(model, "graph", None) is not None:  # export.OnnxModel: keep its graph for the next start
        if key is not None and _file_state(checkpoint) != state:
            log.info("graph cache: %s changed while it was read; its graph not kept", checkpoint)
        else:
            store(checkpoint, model.graph, cfg, key=key)
    return model, cfg, torch_device


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """A file's inode, size and modification time: any rewrite or replacement changes one of them."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def gpu_visible() -> bool:
    """Whether this machine may have a GPU torch would pick (``--device auto``): an NVIDIA, WSL2 or ROCm driver's
    files, or macOS (Apple's GPU). Only torch can say for sure; where this says no, reading stays on the CPU
    without importing it."""
    return sys.platform == "darwin" or any(os.path.exists(p) for p in GPU_SIGNS)
