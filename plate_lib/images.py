"""Images: a file's bytes to a BGR image, within bounds, and the errors that name a bad one.

``decode_image`` reads the image's size from its header (JPEG, PNG, BMP, WebP) before decoding: an image over
``MAX_IMAGE_PIXELS`` is refused unread, one over ``MAX_PIXELS`` is decoded reduced (JPEG: in the decoder), 16-bit,
grey and transparent PNGs become 8-bit BGR, and empty, unknown, truncated or tiny images are a ``DataError``
naming the file. ``read_file`` reads no more than a size cap. ``sources`` reads every data source through these.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MIN_SIDE = 4  # pixels; anything smaller cannot hold a plate
MAX_PIXELS = 4_000_000  # larger images are decoded at 1/2, 1/4 or 1/8 scale (JPEG: in the decoder) to bound memory
MAX_IMAGE_PIXELS = 40_000_000  # larger images (by their header) are refused: decoding one could take gigabytes
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
FORMATS = "JPEG, PNG, BMP or WebP"


class DataError(ValueError):
    """A data path, image or label that cannot be used; the message names it and says what was expected."""


SOF_MARKERS = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}  # SOFn; not DHT, JPG, DAC


def _jpeg_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, walking the segments as libjpeg does (bytes that are
    not a marker are skipped); None when there is no frame header before the scan."""
    i = 2
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:  # extraneous bytes before a marker: libjpeg skips them with a warning
            i += 1
            continue
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in SOF_MARKERS:
            if i + 9 > len(buf):
                return None
            return int.from_bytes(buf[i + 7:i + 9], "big"), int.from_bytes(buf[i + 5:i + 7], "big")
        elif marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            return None
        elif marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(buf[i + 2:i + 4], "big")
    return None


def _png_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, which must come first; None when it does not."""
    if len(buf) < 24 or buf[12:16] != b"IHDR":
        return None
    return int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")


def _bmp_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a BMP's info header (OS/2's 16-bit sizes, or Windows' 32-bit ones; a negative height
    is a top-down image)."""
    if len(buf) < 26:
        return None
    if int.from_bytes(buf[14:18], "little") == 12:
        return int.from_bytes(buf[18:20], "little"), int.from_bytes(buf[20:22], "little")
    return (abs(int.from_bytes(buf[18:22], "little", signed=True)),
            abs(int.from_bytes(buf[22:26], "little", signed=True)))


def _webp_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first chunk: the canvas (VP8X), a lossy frame (VP8) or a lossless one (VP8L)."""
    chunk = buf[12:16]
    if chunk == b"VP8X" and len(buf) >= 30:
        return 1 + int.from_bytes(buf[24:27], "little"), 1 + int.from_bytes(buf[27:30], "little")
    if chunk == b"VP8 " and len(buf) >= 30 and buf[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(buf[26:28], "little") & 0x3FFF, int.from_bytes(buf[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(buf) >= 25 and buf[20] == 0x2F:
        bits = int.from_bytes(buf[21:25], "little")
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    return None


def image_kind(buf: bytes) -> str:
    """``JPEG``, ``PNG``, ``BMP`` or ``WebP`` by the file's first bytes (as OpenCV picks its decoder); "" otherwise."""
    if buf.startswith(JPEG_MAGIC):
        return "JPEG"
    if buf.startswith(PNG_MAGIC):
        return "PNG"
    if buf.startswith(b"BM"):
        return "BMP"
    if buf.startswith(b"RIFF") and buf[8:12] == b"WEBP":
        return "WebP"
    return ""


def header_size(buf: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the image header alone, read where the decoder reads it, without decoding the pixels;
    None when it cannot be read."""
    return {"JPEG": _jpeg_size, "PNG": _png_size, "BMP": _bmp_size, "WebP": _webp_size}[kind](buf) if kind else None


def _reduce_flag(pixels: int, max_pixels: int | None) -> int:
    """IMREAD_COLOR, or the smallest IMREAD_REDUCED_COLOR_{2,4,8} that brings a huge image under ``max_pixels``."""
    if not max_pixels or pixels <= max_pixels:
        return cv2.IMREAD_COLOR
    for r, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4)):
        if pixels / (r * r) <= max_pixels:
            return flag
    return cv2.IMREAD_REDUCED_COLOR_8


def _png_to_bgr(img: np.ndarray) -> np.ndarray:
    """A PNG decoded unchanged (or an array handed in: ``as_bgr``) → BGR uint8: 16 bits scaled to 8, grey
    expanded, alpha composited over black."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:  # transparent pixels become black, like the letterbox padding
        alpha = img[:, :, 3:].astype(np.float32) / 255
        return np.rint(img[:, :, :3] * alpha).astype(np.uint8)
    return img


def as_bgr(img, name: str) -> np.ndarray:
    """An image handed to plate_lib in memory (``reading.read_plates``) as the BGR uint8 array it reads: 8-bit BGR
    as it is (no copy); grey, 16-bit and BGRA converted as a PNG file's are (``_png_to_bgr``). Raises
    ``DataError`` naming ``name`` (e.g. "image 3") for anything else: None (what ``cv2.imread`` gives for a file
    it cannot read), another type, floats, another shape, or a side below ``MIN_SIDE``."""
    if img is None:
        raise DataError(f"{name} is None, not an image: cv2.imread gives None for a file it cannot read (check the "
                        "path), or read files with sources.load_image_file, which says what is wrong")
    if not isinstance(img, np.ndarray):
        hint = " (a PIL image: cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR))" if hasattr(img, "getpixel") else ""
        raise DataError(f"{name} is a {type(img).__name__}, expected a numpy array: H×W×3 BGR uint8, as cv2.imread "
                        f"gives{hint}")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{name} has dtype {img.dtype}, expected uint8 (0-255) as cv2.imread gives (a float image in "
                        "0-1: (img * 255).round().astype(np.uint8))")
    if not (img.ndim == 2 or img.ndim == 3 and img.shape[2] in (1, 3, 4)):
        raise DataError(f"{name} has shape {img.shape}, expected H×W×3 (BGR), H×W×4 (BGRA) or H×W (grey)")
    if min(img.shape[:2]) < MIN_SIDE:
        raise DataError(f"{name} is {img.shape[1]}×{img.shape[0]} pixels, too small to hold a plate (at least "
                        f"{MIN_SIDE}×{MIN_SIDE})")
    if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
        return img
    return _png_to_bgr(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)


def decode_image(buf: bytes, name: str, max_pixels: int | None = MAX_PIXELS, orient: bool = True) -> np.ndarray:
    """Bytes → BGR uint8 image. The size is read from the header first: an image over ``MAX_IMAGE_PIXELS`` is
    refused before decoding. Images over ``max_pixels`` (None: no limit) are decoded at a reduced scale, as
    colour; smaller PNGs are decoded as stored, then 16-bit, grey and alpha are converted (``_png_to_bgr``).
    ``orient``: a JPEG's EXIF orientation is applied (a phone's crop reads upright); False keeps the stored
    pixels, the frame of the header's size and of an annotation in pixels (``decode_photo``).
    Raises ``DataError`` naming ``name`` for empty, unknown, undecodable, truncated, huge or tiny images."""
    if len(buf) == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    kind = image_kind(buf)
    if not kind:
        raise DataError(f"{name}: not a decodable image ({len(buf)} bytes; expected {FORMATS})")
    size = header_size(buf, kind)
    if size is None:
        raise DataError(f"{name}: {kind} data is truncated or corrupt (no image size in its header, {len(buf)} "
                        "bytes); re-export the file or remove it")
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(f"{name}: {kind} header says {w}×{h} pixels ({w * h / 1e6:.0f} megapixels), over the "
                        f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels plate_lib decodes (a plate crop or a photo is far "
                        "smaller); shrink it or remove it")
    if min(w, h) < MIN_SIDE:
        raise DataError(f"{name}: image is {w}×{h} pixels, too small to hold a plate (at least {MIN_SIDE}×{MIN_SIDE})")
    arr = np.frombuffer(buf, np.uint8)
    if kind == "PNG" and w * h <= MAX_PIXELS:  # as stored (16 bits, alpha: up to 8 bytes a pixel), then converted
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
        img = None if img is None else _png_to_bgr(img)
    else:  # JPEG is reduced in the decoder; other formats are decoded as 8-bit colour, then reduced
        img = cv2.imdecode(arr, _reduce_flag(w * h, max_pixels) | (0 if orient else cv2.IMREAD_IGNORE_ORIENTATION))
    if img is None:
        raise DataError(f"{name}: {kind} data is truncated or corrupt ({len(buf)} bytes); re-export the file or remove it")
    if kind == "JPEG" and b"\xff\xd9" not in buf[buf.rfind(b"\xff\xda"):]:  # OpenCV 4 fills a cut-off JPEG with grey
        raise DataError(f"{name}: JPEG is truncated (no end-of-image marker, {len(buf)} bytes); re-export the file or remove it")
    if min(img.shape[:2]) < MIN_SIDE:
        raise DataError(f"{name}: image is {img.shape[1]}×{img.shape[0]} pixels, too small to hold a plate "
                        f"(at least {MIN_SIDE}×{MIN_SIDE})")
    return img


def decode_photo(buf: bytes, name: str) -> tuple[np.ndarray, tuple[float, float]]:
    """``decode_image`` for a photo whose annotation is in its own pixels: the image (reduced when it is over
    ``MAX_PIXELS``; its stored pixels, any EXIF orientation not applied, since the annotation and the header's
    size are in their frame) and the (x, y) scale from the photo's pixels to the image's."""
    img = decode_image(buf, name, orient=False)
    w, h = header_size(buf, image_kind(buf)) or (img.shape[1], img.shape[0])
    return img, (img.shape[1] / w, img.shape[0] / h)


def too_large(name: str, size: int, max_bytes: int, declared: bool = False) -> DataError:
    return DataError(f"{name}: {size / 2**20:.1f} MB{' (its declared size in the zip)' if declared else ''}, over "
                     f"the {max_bytes / 2**20:g} MB cap (data.max_file_mb); a plate crop or photo is far smaller. "
                     "Raise data.max_file_mb if it is a real image, or remove it")


def read_file(path: Path, max_bytes: int, name: str | None = None, too_big=too_large) -> bytes:
    """A file's bytes, refused (``DataError``, made by ``too_big``: an image's message by default) when it is larger
    than ``max_bytes``: by its size on disk before reading, and by what a read gives (a file that grows, a device)."""
    name = name or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise too_big(name, size, max_bytes)
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise DataError(f"{name}: cannot be read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise too_big(name, len(data), max_bytes)
    return data
