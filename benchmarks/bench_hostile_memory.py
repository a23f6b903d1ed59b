"""Peak memory of reading hostile files: each one goes through ``dataset.load_split`` (with ``skip_bad``, as
``plate evaluate --skip-bad`` reads it) in a fresh process, which reports its peak RSS.

    python benchmarks/bench_hostile_memory.py [--cases zip_bomb huge_png …] [--out FILE.json]

Cases (every file is crafted here, in a temporary folder, and is a few MB at most):

- ``good``: one ordinary plate crop in a dl1 zip, for the baseline (Python, torch, OpenCV imported).
- ``zip_bomb``: a dl1 zip whose one "JPEG" is 2 GiB of zeros, deflated to 2 MB, its size declared honestly.
- ``zip_liar``: the same stream, its declared size 1 KB (zipfile stops there; the CRC check fails).
- ``huge_png``: a valid 20000×20000 RGB PNG of zeros (1.2 GB of pixels, a 1.2 MB file) in a crops folder.
- ``huge_jpeg``: a progressive JPEG whose frame header says 20000×20000 (its decoder would allocate 2.4 GB of
  coefficients before reading a pixel).
- ``largest_png``, ``largest_jpeg``: the costliest images that are decoded rather than refused, just under the
  40-megapixel cap (6300×6300): a 16-bit RGBA PNG (318 MB as stored) and a progressive JPEG without chroma
  subsampling (its decoder holds 238 MB of coefficients); both are decoded reduced to the 4-megapixel size.

Every case must stay under 1 GB, the Python process with torch and OpenCV included (``good`` shows what that
costs alone); the test suite runs the hostile five.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MB = 2**20
LIMIT_MB = 1024
ZIP_NAME = "CCPD2019-dl1/test/0-皖A12345.jpg"


def zeros_deflated(n: int) -> bytes:
    """A raw deflate stream of ``n`` zero bytes, built from one compressed MiB repeated (each block ends with a
    full flush, so the copies are independent): a 2 GiB stream costs 2 MB and no 2 GiB buffer."""
    mib = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = mib.compress(bytes(MB)) + mib.flush(zlib.Z_FULL_FLUSH)
    rest = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = rest.compress(bytes(n % MB)) + rest.flush(zlib.Z_FINISH)
    return chunk * (n // MB) + tail


def zeros_crc(n: int) -> int:
    crc, block = 0, bytes(MB)
    for _ in range(n // MB):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(bytes(n % MB), crc)


def bomb_zip(path: Path, inflated: int, declared: int | None = None) -> Path:
    """A zip with one deflated member of ``inflated`` zeros; its header declares ``declared`` bytes (default: the
    truth). Written by hand: zipfile would need the whole member in memory to write it."""
    data, name = zeros_deflated(inflated), ZIP_NAME.encode("utf-8")
    crc, size = zeros_crc(inflated), inflated if declared is None else declared
    zip64 = size >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF
    assert not zip64, "keep the bomb under 4 GiB: a plain zip header holds its size"
    common = struct.pack("<HHHHHIII", 20, 0x800, 8, 0, 0x21, crc, len(data), size)  # version, UTF-8 flag, deflate
    local = b"PK\x03\x04" + common + struct.pack("<HH", len(name), 0) + name
    central = b"PK\x01\x02" + struct.pack("<H", 20) + common + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0) + name
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)
    return path


def png_of_zeros(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A valid PNG of black pixels (filter 0 on every row), its IDAT built like ``zeros_deflated``."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = height * (1 + width * channels * depth // 8)
    idat = b"\x78\xda" + zeros_deflated(raw) + struct.pack(">I", (raw % 65521) << 16 | 1)  # adler32 of zeros

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg(width: int = 120, height: int = 40, progressive: bool = False) -> bytes:
    """A JPEG of horizontal stripes (not all one colour, so the scans carry data); progressive ones without
    chroma subsampling, the costliest layout to decode."""
    import cv2
    import numpy as np

    img = np.full((height, width, 3), 90, np.uint8)
    img[::7] = 200
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444] if progressive else []
    return cv2.imencode(".jpg", img, params)[1].tobytes()


def huge_jpeg_header(width: int, height: int) -> bytes:
    """A small progressive JPEG with its frame header (SOF2) rewritten to ``width``×``height``."""
    buf = bytearray(jpeg(progressive=True))
    sof = buf.index(b"\xff\xc2")
    buf[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(buf)


def make_case(case: str, folder: Path) -> Path:
    """The data path for ``case``: a dl1 zip or a crops folder holding the one hostile file."""
    if case in ("zip_bomb", "zip_liar"):
        return bomb_zip(folder / f"{case}.zip", 2 * 1024 * MB, declared=1024 if case == "zip_liar" else None)
    files = {
        "good": jpeg,
        "huge_png": lambda: png_of_zeros(20000, 20000),
        "huge_jpeg": lambda: huge_jpeg_header(20000, 20000),
        "largest_png": lambda: png_of_zeros(6300, 6300, depth=16, colour=6),
        "largest_jpeg": lambda: jpeg(6300, 6300, progressive=True),
    }
    ext = ".png" if case.endswith("png") else ".jpg"
    root = folder / case
    (root / "test").mkdir(parents=True)
    (root / "test" / f"0-皖A12345{ext}").write_bytes(files[case]())
    return root


def child(path: str) -> dict:
    """Read ``path``'s test split as ``plate evaluate --skip-bad`` does; the result and this process's peak RSS."""
    from plate_lib.config import PreprocessConfig
    from plate_lib.dataset import load_split
    from plate_lib.sources import open_source

    data = load_split(open_source(path), "test", PreprocessConfig(), skip_bad=True, workers=1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return {"plates": len(data), "skipped": [why for _, why in data.skipped], "peak_rss_mb": round(peak_mb)}


CASES = ("good", "zip_bomb", "zip_liar", "huge_png", "huge_jpeg", "largest_png", "largest_jpeg")


def run(cases: list[str]) -> dict[str, dict]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            path = make_case(case, Path(tmp))
            size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
            proc = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True,
                                  timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"{case}: the reading process failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["skipped"] = [why.replace(f"{tmp}/", "") for why in r["skipped"]]  # no temporary paths in the record
            out[case] = {"file_kb": round(size / 1024), **r}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--out", help="also write the results here as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child), ensure_ascii=False))
        return
    results = run(args.cases)
    print(f"{'case':<12} {'file KB':>8} {'peak RSS MB':>12}  result")
    for case, r in results.items():
        what = f"{r['plates']} plate(s)" + (f"; skipped: {r['skipped'][0][:90]}" if r["skipped"] else "")
        print(f"{case:<12} {r['file_kb']:>8} {r['peak_rss_mb']:>12}  {what}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
