"""Shared fixtures: tiny datasets written to tmp_path, and the real CCPD sample when ../shared is present."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CCPD_SAMPLE = SHARED_DATA / "ccpd2019-sample"
SHIPPED = REPO / "models" / "plate_default.pt"  # the shipped model (make model)

needs_sample = pytest.mark.skipif(
    not CCPD_SAMPLE.is_dir(), reason=f"real CCPD2019 sample not found at {CCPD_SAMPLE} (../shared is absent)"
)


@pytest.fixture(autouse=True, scope="session")
def graph_cache(tmp_path_factory) -> Path:
    """The graphs plate predict and plate evaluate export (graph.py) go to this session's folder, never the user's
    cache; subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("graphs")
    os.environ["PLATE_LIB_CACHE"] = str(folder)
    return folder


class LegacyZipInfo(zipfile.ZipInfo):
    """A zip entry whose UTF-8 name is stored without the UTF-8 flag, as in the CCPD2019-dl1 zip."""

    def _encodeFilenameFlags(self):  # noqa: N802 (zipfile's name)
        return self.filename.encode("utf-8"), self.flag_bits & ~0x800


def plate_jpeg(text: str = "皖A12345", w: int = 120, h: int = 40, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (180, 60, 20), np.uint8)
    img += rng.integers(0, 30, img.shape, dtype=np.uint8)
    cv2.putText(img, text[1:], (5, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return cv2.imencode(".jpg", img)[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width``×``height`` over a few bytes of pixels: huge by its header alone."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


def write_dl1_zip(path: Path, plates: dict[str, list[str]], utf8_flag: bool = False, root: str = "CCPD2019-dl1") -> Path:
    """``{"train": [...], "test": [...]}`` → a dl1-layout zip; names carry the UTF-8 flag or not."""
    with zipfile.ZipFile(path, "w") as zf:
        for split, texts in plates.items():
            for i, text in enumerate(texts):
                name = f"{root}/{split}/{i:06d}-{text}.jpg"
                data = plate_jpeg(text, seed=i)
                if utf8_flag:
                    zf.writestr(name, data)
                else:
                    zf.writestr(LegacyZipInfo(name), data)
    return path


@pytest.fixture
def dl1_zip(tmp_path: Path) -> Path:
    plates = {
        "train": ["皖A12345", "苏B88888", "沪AD1234", "皖AD12345", "浙C0L1A7", "京A00001"] * 5,
        "test": ["皖A54321", "鲁Q99999", "皖AF12345"],
    }
    return write_dl1_zip(tmp_path / "dl1.zip", plates)
