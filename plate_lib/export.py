"""Export: a checkpoint to ONNX with a dynamic batch, and a parity check against PyTorch.

The ONNX graph takes ``images``: float32 [N, C, H, W] in 0..1, the crop letterboxed to H×W (resize keeping
the aspect ratio, centre, pad with black; grayscale when C = 1), exactly ``preprocess.letterbox`` then ``/ 255``.
It returns ``province_logits`` [N, P] and ``ctc_logits`` [N, T, S + 1]; decode with ``inference.decode_logits``
(argmax province; CTC best path: merge repeats, drop blank 0; symbol i is class i + 1).

``OnnxModel`` runs such a graph in ONNX Runtime in place of the PyTorch model (``predict.runtime: onnx``): the same
readings, about 4× faster through the network one plate at a time on a CPU (README, "Export to ONNX").
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from .config import ConfigError, PreprocessConfig
from .inference import decode_logits, load_model

T = TypeVar("T")
R = TypeVar("R")


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17) -> Path:
    model, cfg = load_model(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onnx_graph(model, cfg.preprocess, opset))
    return out


def onnx_graph(model: torch.nn.Module, pre: PreprocessConfig, opset: int = 17) -> bytes:
    """``model`` (in eval mode) as a serialised ONNX graph taking ``pre``'s input size, any batch."""
    dummy = torch.rand(2, pre.channels, pre.height, pre.width)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the exporter warns that a GRU/LSTM without explicit h0 may pin the batch size; the initial state
        # is built from the input's shape, and check_parity runs other batch sizes to prove it
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        # (dynamo=False: the new exporter needs onnxscript); the tracer's notes on the RNN's shape checks (constant
        # for this input size) are noise for a user of predict.runtime onnx, who exports on every start
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*(legacy TorchScript-based ONNX export|feature will be removed)",
                                category=DeprecationWarning)
        torch.onnx.export(
            model, (dummy,), buf, input_names=["images"], output_names=["province_logits", "ctc_logits"],
            dynamic_axes={"images": {0: "batch"}, "province_logits": {0: "batch"}, "ctc_logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return buf.getvalue()


PART_PLATES = 16  # OnnxModel's part_plates by default: with n threads, a batch is read in parts of at most this
# many plates on n one-thread workers (8-64 read level; 0: whole, by one session of n threads: benchmarks/batch.py)


class OnnxModel(torch.nn.Module):
    """``model`` exported (in memory) and run by ONNX Runtime on the CPU, in its place at inference: takes and
    returns what it does (float [B, C, H, W] → province and CTC logits, as torch tensors), so ``read_plates``,
    ``evaluate`` and ``plate predict`` read with it unchanged. ONNX Runtime's threads follow
    ``torch.get_num_threads()`` (a session per thread count); ``in_parts`` spreads a batch over them, in parts of
    at most ``part_plates`` (0: a batch whole, on one session of n threads)."""

    def __init__(self, model: torch.nn.Module, pre: PreprocessConfig, part_plates: int = PART_PLATES):
        super().__init__()
        try:
            import onnxruntime
        except ModuleNotFoundError:
            raise ConfigError("predict.runtime onnx needs ONNX Runtime: pip install 'plate_lib[export]' "
                              "(or onnxruntime), or set predict.runtime=torch") from None
        self._ort = onnxruntime
        self.part_plates = part_plates
        self.graph = onnx_graph(model.eval(), pre)
        self._sessions: dict[int, object] = {}
        self._pools: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads) → in_parts' workers
        self._local = threading.local()  # .worker: this thread is one of in_parts' workers

    def session(self, threads: int):
        if threads not in self._sessions:
            opts = self._ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self._sessions[threads] = self._ort.InferenceSession(self.graph, opts, providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def threads(self) -> int:
        """The session's threads here: ``torch.get_num_threads()``, and 1 on one of ``in_parts``' workers."""
        return 1 if getattr(self._local, "worker", False) else torch.get_num_threads()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.device.type != "cpu":
            raise RuntimeError(f"predict.runtime onnx runs on the CPU; the input is on {x.device} (use --device cpu)")
        prov, ctc = self.run(np.ascontiguousarray(x.detach().numpy(), np.float32))
        return torch.from_numpy(prov), torch.from_numpy(ctc)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [B, C, H, W] in 0..1 → province and CTC logits, as numpy arrays, on the session of
        ``threads()`` threads."""
        return tuple(self.session(self.threads()).run(None, {"images": images}))

    def run_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [B, H, W, C] (letterboxed) → province and CTC logits, with no torch tensor between: what
        ``inference.predict_images`` calls in place of ``forward`` (on one plate, the conversions to and from
        torch cost a seventh of the read). A batch goes ``in_parts``."""
        images = np.asarray(images)
        outs = self.in_parts(lambda part: self.run(np.ascontiguousarray(part.transpose(0, 3, 1, 2), np.float32) / 255),
                             images)
        return outs[0] if len(outs) == 1 else tuple(np.concatenate(parts_k) for parts_k in zip(*outs, strict=True))

    def in_parts(self, read: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``read`` of each part of ``items`` (plates), in order. With n threads, two plates or more go in parts of
        at most ``part_plates`` to n workers, each reading its parts on a one-thread session (ONNX Runtime and
        OpenCV let go of the GIL), rather than whole to one n-thread session that spreads each small layer over
        the cores: on this project's 2-core CPU whole batched reads are 1.1-1.3× faster so
        (``benchmarks/batch.py``), with the same readings. ``inference.read_crops`` reads raw crops so, end to
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


def check_parity(checkpoint: str | Path, onnx_path: str | Path, images: np.ndarray, atol: float = 1e-4) -> dict:
    """Run both on ``images`` (uint8 [N, H, W, C], letterboxed). Returns the max abs logit difference, whether
    the decoded plates are identical, and ``ok`` (difference ≤ ``atol`` and identical plates)."""
    import onnxruntime as ort

    model, cfg = load_model(checkpoint)
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        prov_t, ctc_t = model(x)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    prov_o, ctc_o = sess.run(None, {"images": x.numpy()})
    diff = max(float(np.abs(prov_o - prov_t.numpy()).max()), float(np.abs(ctc_o - ctc_t.numpy()).max()))
    plates_t, _ = decode_logits(prov_t, ctc_t, list(cfg.provinces))
    plates_o, _ = decode_logits(torch.from_numpy(prov_o), torch.from_numpy(ctc_o), list(cfg.provinces))
    same = plates_t == plates_o
    return {"n": len(images), "max_abs_diff": diff, "plates_identical": same, "ok": same and diff <= atol}
