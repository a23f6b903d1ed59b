"""Peers: other plate readers (HyperLPR, LPRNet), run beside plate_lib for comparison only.

No peer code is imported here. Each reader runs as a separate program, ``benchmarks/peer_readers.py``, in a
process of its own: HyperLPR in ``.venv-peers`` (its package needs OpenCV 4; ``make peers`` builds that
environment), LPRNet and plate_lib itself in this interpreter. Crops travel as an ``.npz`` of raw pixels
(no pickles) and readings come back as JSON. ``make peers`` (``benchmarks/peers.py``) measures them all; the
report's error analysis asks them for the plates plate_lib got wrong, when they are installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
READERS_SCRIPT = REPO / "benchmarks" / "peer_readers.py"
PEERS_VENV = REPO / ".venv-peers"
LPRNET_WEIGHTS = REPO.parent / "shared" / "peers" / "lprnet" / "Final_LPRNet_model.pth"

PEERS = ("hyperlpr", "hyperlpr_refine", "lprnet")
"""The peers' readers: HyperLPR's recogniser alone, HyperLPR after its own refinement step, LPRNet."""
READERS = ("plate_lib", "plate_lib_onnx", "plate_lib_tta", *PEERS)
PHOTO_READERS = ("hyperlpr_photos",)
"""Readers of whole photos: HyperLPR's whole pipeline (its detector, refinement and recogniser;
``benchmarks/photos.py --hyperlpr``)."""


class PeerError(RuntimeError):
    """A reader that is not installed, or that failed; the message says which and what to do."""


def write_images(path: str | Path, images: Sequence[np.ndarray]) -> Path:
    """BGR uint8 crops of any sizes → one ``.npz`` (a flat pixel buffer and the shapes; no pickles)."""
    shapes = np.array([im.shape for im in images], np.int64).reshape(-1, 3)
    flat = np.concatenate([np.ascontiguousarray(im, np.uint8).ravel() for im in images]) if images else \
        np.zeros(0, np.uint8)
    np.savez(path, pixels=flat, shapes=shapes)
    return Path(path)


def interpreter(reader: str) -> Path:
    """The Python that runs ``reader``: ``.venv-peers`` for HyperLPR, this one for the others."""
    return PEERS_VENV / "bin" / "python" if reader.startswith("hyperlpr") else Path(sys.executable)


def missing(reader: str, lprnet_weights: str | Path | None = None) -> str | None:
    """Why ``reader`` cannot run on this machine, or None when it can (``lprnet_weights``: default LPRNET_WEIGHTS)."""
    lprnet_weights = lprnet_weights or LPRNET_WEIGHTS
    if reader not in READERS + PHOTO_READERS:
        return f"unknown reader {reader!r}; known: {', '.join(READERS + PHOTO_READERS)}"
    if not READERS_SCRIPT.is_file():
        return f"{READERS_SCRIPT} not found (peers run from a checkout of the repository)"
    if reader.startswith("hyperlpr") and not interpreter(reader).is_file():
        return f"HyperLPR is not installed: {PEERS_VENV} is missing (run `make peers`, which builds it)"
    if reader == "lprnet" and not Path(lprnet_weights).is_file():
        return f"LPRNet weights not found at {lprnet_weights}"
    return None


def run_reader(reader: str, images: Sequence[np.ndarray], timing: bool = False, timeout: float = 3600,
               **options: str | Path | None) -> dict:
    """Read ``images`` with ``reader`` in a fresh process; its JSON (``texts``, and timings with ``timing``).

    ``options`` become the reader's flags (``checkpoint=…`` → ``--checkpoint …``; see peer_readers.py)."""
    why = missing(reader, options.get("lprnet_weights"))
    if why:
        raise PeerError(why)
    with tempfile.TemporaryDirectory(prefix="plate-peers-") as tmp:
        src, out = write_images(Path(tmp) / "images.npz", images), Path(tmp) / "out.json"
        cmd = [str(interpreter(reader)), str(READERS_SCRIPT), reader, "--images", str(src), "--out", str(out)]
        cmd += ["--timing"] if timing else []
        for key, value in options.items():
            if value is not None:
                cmd += [f"--{key.replace('_', '-')}", str(value)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode or not out.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise PeerError(f"reader {reader} failed (exit code {done.returncode}):\n{tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def best_timings(runs: Sequence[dict]) -> dict:
    """Runs of one reader on the same crops (``run_reader`` with ``timing``), in passes taken in turn with the other
    readers' → the first run with the best of each timing: the highest plates/s, each thread count's latency from
    the pass of the lowest p50, the highest peak memory. A slow spell of a shared machine then slows one pass of
    every reader, not every pass of one; ``readings_differ`` counts crops a later pass read otherwise (0 for a
    deterministic reader)."""
    best = dict(runs[0])
    for run in runs[1:]:
        best["plates_per_s"] = max(best["plates_per_s"], run["plates_per_s"])
        for key in [k for k in run if k.startswith("latency_ms_")]:
            best[key] = min(best[key], run[key], key=lambda t: t["p50"])
        best["peak_rss_mb"] = max(best["peak_rss_mb"], run["peak_rss_mb"])
    best["readings_differ"] = sum(any(r["texts"][i] != t for r in runs[1:]) for i, t in enumerate(runs[0]["texts"]))
    return best


def peer_readings(images: Sequence[np.ndarray], readers: Sequence[str] = PEERS) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each installed peer's reading of every crop, and why the others were left out."""
    readings, absent = {}, {}
    for reader in readers:
        why = missing(reader)
        if why:
            absent[reader] = why
        else:
            readings[reader] = run_reader(reader, images)["texts"]
    return readings, absent
