"""Export: a checkpoint to ONNX with a dynamic batch, and a parity check against PyTorch.

The ONNX graph takes ``images``: float32 [N, C, H, W] in 0..1, the crop letterboxed to H×W (resize keeping
the aspect ratio, centre, pad with black; grayscale when C = 1), exactly ``preprocess.letterbox`` then ``/ 255``.
It returns ``province_logits`` [N, P] and ``ctc_logits`` [N, T, S + 1]; decode with ``inference.decode_logits``
(argmax province; CTC best path: merge repeats, drop blank 0; symbol i is class i + 1).

``OnnxModel`` runs such a graph in ONNX Runtime in place of the PyTorch model (``predict.runtime: onnx``): the same
readings, about 4× faster through the network one plate at a time on a CPU (README, "Export to ONNX");
``graph.OnnxReader`` runs one without torch.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from .config import PreprocessConfig
from .graph import PART_PLATES, OnnxReader
from .inference import decode_logits, load_model


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


class OnnxModel(torch.nn.Module, OnnxReader):
    """``model`` exported (in memory) and run by ONNX Runtime on the CPU, in its place at inference: takes and
    returns what it does (float [B, C, H, W] → province and CTC logits, as torch tensors), so ``read_plates``,
    ``evaluate`` and ``plate predict`` read with it unchanged. A ``graph.OnnxReader`` whose threads follow
    ``torch.get_num_threads()`` (a session per thread count); ``in_parts`` spreads a batch over them, in parts of
    at most ``part_plates`` (0: a batch whole, on one session of n threads)."""

    def __init__(self, model: torch.nn.Module, pre: PreprocessConfig, part_plates: int = PART_PLATES):
        torch.nn.Module.__init__(self)
        OnnxReader.__init__(self, onnx_graph(model.eval(), pre), part_plates)

    def cores(self) -> int:
        return torch.get_num_threads()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.device.type != "cpu":
            raise RuntimeError(f"predict.runtime onnx runs on the CPU; the input is on {x.device} (use --device cpu)")
        prov, ctc = self.run(np.ascontiguousarray(x.detach().numpy(), np.float32))
        return torch.from_numpy(prov), torch.from_numpy(ctc)


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
