"""Preprocess: a crop as the model's input (``letterbox``), and a split's crops decoded in parallel (``decode_all``).

Apart from ``dataset`` so that a decoding worker process imports OpenCV and numpy, not torch: sixteen workers each
importing torch (and its CUDA libraries) took longer than the decoding on a GPU machine's virtual disk.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from .config import PreprocessConfig
from .sources import DataError, Record, Source


def letterbox(img: np.ndarray, height: int, width: int, grayscale: bool) -> np.ndarray:
    """Resize keeping the aspect ratio to fit ``height``×``width``, centre it, pad with black: [H, W, C] uint8."""
    if grayscale and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    h, w = img.shape[:2]
    s = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * s))), max(1, min(width, round(w * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (height - nh) // 2, (width - nw) // 2
    out = np.zeros((height, width) + img.shape[2:], np.uint8)
    out[top:top + nh, left:left + nw] = img
    return out if out.ndim == 3 else out[:, :, None]


TTA_VIEWS = ("as given", "padded", "cut")  # predict.tta's views of a crop, in tta_views' order
TTA_PAD = 0.06         # padded: this share of the crop's height repeated around it (a looser crop)
TTA_CUT = (0.04, 0.02)  # cut: these shares of the height and width cut from each side (a tighter crop)


def tta_views(img: np.ndarray) -> list[np.ndarray]:
    """A crop as given, padded and cut (``TTA_VIEWS``): what ``predict.tta`` reads and votes over. The view most
    like the model's training crops differs from crop to crop (loose street crops, tight box crops); a crop too
    small to cut is read as given in its place."""
    h, w = img.shape[:2]
    pad = max(1, round(TTA_PAD * h))
    cut_h, cut_w = max(1, round(TTA_CUT[0] * h)), max(1, round(TTA_CUT[1] * w))
    cut = img[cut_h:h - cut_h, cut_w:w - cut_w] if h > 4 * cut_h and w > 4 * cut_w else img
    return [img, cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cut]


def _decode_chunk(source: Source, records: list[Record], pre: PreprocessConfig) -> list[np.ndarray | str]:
    cv2.setNumThreads(1)
    out: list[np.ndarray | str] = []
    for rec in records:
        try:
            out.append(letterbox(source.load(rec), pre.height, pre.width, pre.grayscale))
        except DataError as e:
            out.append(str(e))
    return out


_worker_source: Source | None = None  # the source a decoding worker process reads (set once, by _start_worker)


def _start_worker(source: Source) -> None:
    global _worker_source
    _worker_source = source


def _decode_in_worker(records: list[Record], pre: PreprocessConfig) -> list[np.ndarray | str]:
    assert _worker_source is not None, "decoding worker started without its source"
    return _decode_chunk(_worker_source, records, pre)


def decode_all(source: Source, records: list[Record], pre: PreprocessConfig, workers: int) -> list:
    """Each record letterboxed to ``pre`` (uint8 [H, W, C]), or the ``DataError`` text of one that cannot be read,
    in order; in ``workers`` processes, 256 records a task."""
    chunks = [records[i:i + 256] for i in range(0, len(records), 256)]
    if workers <= 1 or len(chunks) <= 1:
        return [r for c in chunks for r in _decode_chunk(source, c, pre)]
    # fresh processes (forkserver): a fork of a process whose OpenCV or torch threads have run (after generating
    # synthetic plates in-process, say) can deadlock on a lock one of those threads held. The source (with its
    # index of every record) goes to each worker once, not with every chunk: per chunk, its pickle and a zip's
    # table of contents read again made decoding quadratic in the plates (360k synthetic plates on 2 cores:
    # stopped unfinished after 15 minutes; now 1.5 minutes)
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(source,)) as pool:
        parts = pool.map(_decode_in_worker, chunks, [pre] * len(chunks))
        return [r for part in parts for r in part]
