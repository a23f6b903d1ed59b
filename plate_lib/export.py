"""Export: a checkpoint to ONNX with a dynamic batch, and a parity check against PyTorch.

The ONNX graph takes ``images``: float32 [N, C, H, W] in 0..1, the crop letterboxed to H×W (resize keeping
the aspect ratio, centre, pad with black; grayscale when C = 1), exactly ``preprocess.letterbox`` then ``/ 255``.
It returns ``province_logits`` [N, P] and ``ctc_logits`` [N, T, S + 1]; decode with ``inference.decode_logits``
(argmax province; CTC best path: merge repeats, drop blank 0; symbol i is class i + 1).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .inference import decode_logits, load_model


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17) -> Path:
    model, cfg = load_model(checkpoint)
    pre = cfg.preprocess
    dummy = torch.rand(2, pre.channels, pre.height, pre.width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the exporter warns that a GRU/LSTM without explicit h0 may pin the batch size; the initial state
        # is built from the input's shape, and check_parity runs other batch sizes to prove it
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        torch.onnx.export(
            model, (dummy,), str(out), input_names=["images"], output_names=["province_logits", "ctc_logits"],
            dynamic_axes={"images": {0: "batch"}, "province_logits": {0: "batch"}, "ctc_logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return out


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
