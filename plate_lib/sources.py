"""Sources: where plates come from. Each yields records ``(name, plate text)`` per split and loads images.

- ``Dl1Zip``: the CCPD2019-dl1 zip, read in place: ``<root>/{train,test}/<id>-<plate>.jpg``.
- ``CropFolder``: a folder of crops with ``labels.csv`` (``file,label``) or files named ``[<id>-]<plate>.jpg``;
  ``train/`` and ``test/`` sub-folders are used as splits when present, else the split is drawn by a hash of
  the plate text (test 15 %, validation 15 % of the rest), so every image of one plate lands in one split.
- ``CcpdPhotos``: CCPD2019 photos whose file names carry the annotation; the plate is cut out with a
  perspective warp from its four corners (``crop="corners"``), or by its annotated bounding box as the
  CCPD2019-dl1 crops were made (``crop="bbox"``).
- ``"synthetic"``: a dl1-layout zip made by ``synth.generate_zip`` the first time it is needed.

Splits are ``train``, ``val``, ``test`` and ``all``. Validation is a deterministic share of ``train`` chosen by
a hash of the file name (of the plate text in hash-split folders), so it is the same on every run and
machine and nothing is moved.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .plates import PlateError, check_plate, label_from_filename, plate_from_ccpd_indices, repair_zip_name

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
SPLITS = ("train", "val", "test", "all")
CROP_MODES = ("corners", "bbox")  # how a CCPD2019 photo becomes a crop (data.ccpd_crop)
MIN_SIDE = 4  # pixels; anything smaller cannot hold a plate
MAX_PIXELS = 4_000_000  # larger images are decoded at 1/2, 1/4 or 1/8 scale (JPEG: in the decoder) to bound memory
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data path, image or label that cannot be used; the message names it and says what was expected."""


@dataclass(frozen=True)
class Record:
    name: str  # path inside the zip or folder: shown in errors and galleries
    text: str  # the plate, checked against the plate format ("" when the label is bad)
    meta: dict = field(default_factory=dict, compare=False)  # e.g. CCPD sub-dataset, tilt, brightness, blur
    error: str = ""  # why the label is bad, if it is


def in_val(name: str, val_fraction: float) -> bool:
    """Deterministic validation membership from the file name alone (the same on every machine)."""
    h = int.from_bytes(hashlib.blake2b(Path(name).name.encode("utf-8"), digest_size=8).digest(), "big")
    return h / 2**64 < val_fraction


def hashed_split(key: str, val_fraction: float, folder: str | None = None) -> str:
    """``train``, ``val`` or ``test`` for one record. ``folder`` is the split its data layout gives (``train`` or
    ``test``); without one, ``val_fraction`` of the keys go to ``test`` by a hash of ``key``. ``val`` is
    ``val_fraction`` of what is left for ``train``, by a second hash."""
    if folder is None:
        folder = "test" if in_val("test:" + Path(key).name, val_fraction) else "train"
    return "val" if folder == "train" and in_val(key, val_fraction) else folder


def _labelled(name: str, label: str, meta: dict | None = None) -> Record:
    try:
        return Record(name, check_plate(label), meta or {})
    except PlateError as e:
        return Record(name, "", meta or {}, error=str(e))


def _jpeg_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, walking the segments; None when not found."""
    i = 2
    while i + 9 <= len(buf) and buf[i] == 0xFF:
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT, JPG, DAC)
            return int.from_bytes(buf[i + 7:i + 9], "big"), int.from_bytes(buf[i + 5:i + 7], "big")
        else:
            i += 2 + int.from_bytes(buf[i + 2:i + 4], "big")
    return None


def _header_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header alone, without decoding the pixels; None when unknown."""
    if buf.startswith(JPEG_MAGIC):
        return _jpeg_size(buf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(buf)) as im:
                return im.size
    except Image.DecompressionBombError:
        return (1 << 16, 1 << 16)
    except Exception:  # PIL raises several types for foreign or broken headers; the decoder reports them
        return None


def _reduce_flag(buf: bytes, max_pixels: int | None) -> int:
    """IMREAD_COLOR, or the smallest IMREAD_REDUCED_COLOR_{2,4,8} that brings a huge image under ``max_pixels``."""
    size = _header_size(buf) if max_pixels else None
    if size is None or size[0] * size[1] <= max_pixels:
        return cv2.IMREAD_COLOR
    for r, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4)):
        if size[0] * size[1] / (r * r) <= max_pixels:
            return flag
    return cv2.IMREAD_REDUCED_COLOR_8


def _png_to_bgr(img: np.ndarray) -> np.ndarray:
    """A PNG decoded unchanged → BGR uint8: 16 bits scaled to 8, grey expanded, alpha composited over black."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:  # transparent pixels become black, like the letterbox padding
        alpha = img[:, :, 3:].astype(np.float32) / 255
        return np.rint(img[:, :, :3] * alpha).astype(np.uint8)
    return img


def decode_image(buf: bytes, name: str, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Bytes → BGR uint8 image; 16-bit, grey and alpha inputs are converted, images over ``max_pixels`` are
    decoded at a reduced scale. Raises ``DataError`` naming ``name`` for empty, undecodable, truncated or
    tiny images."""
    if len(buf) == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    kind = "JPEG" if buf.startswith(JPEG_MAGIC) else "PNG" if buf.startswith(PNG_MAGIC) else ""
    arr = np.frombuffer(buf, np.uint8)
    if kind == "PNG":
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
        if img is not None:
            img = _png_to_bgr(img)
            size = img.shape[0] * img.shape[1]
            if max_pixels and size > max_pixels:
                s = (max_pixels / size) ** 0.5
                img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    else:
        img = cv2.imdecode(arr, _reduce_flag(buf, max_pixels))
    if img is None and kind:
        raise DataError(f"{name}: {kind} data is truncated or corrupt ({len(buf)} bytes); re-export the file or remove it")
    if img is None:
        raise DataError(f"{name}: not a decodable image ({len(buf)} bytes; expected JPEG or PNG)")
    if kind == "JPEG" and b"\xff\xd9" not in buf[buf.rfind(b"\xff\xda"):]:  # OpenCV 4 fills a cut-off JPEG with grey
        raise DataError(f"{name}: JPEG is truncated (no end-of-image marker, {len(buf)} bytes); re-export the file or remove it")
    if min(img.shape[:2]) < MIN_SIDE:
        raise DataError(f"{name}: image is {img.shape[1]}×{img.shape[0]} pixels, too small to hold a plate "
                        f"(at least {MIN_SIDE}×{MIN_SIDE})")
    return img


def warn_case_clashes(names: list[str], where: str) -> list[list[str]]:
    """Groups of names that differ only in case. They are distinct files here and all are kept, but they
    collide when the data is copied to a case-insensitive file system (macOS, Windows): say so."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.lower(), []).append(n)
    clashes = [g for g in groups.values() if len(g) > 1]
    if clashes:
        log.warning("%s: %d group(s) of file names differ only in case (all kept; they would collide on a "
                    "case-insensitive file system): %s", where, len(clashes), "; ".join(" / ".join(g) for g in clashes[:10]))
    return clashes


class Source:
    """Base: ``records(split)`` lists, ``load(record)`` decodes; ``fingerprint()`` changes when content does."""

    kind = "source"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15):
        self.path = Path(path)
        self.val_fraction = val_fraction
        self.resize: tuple[int, int] | None = None  # (width, height) every crop is resized to, when set
        self._all: list[tuple[str, Record]] | None = None  # (split: train, val or test; record)

    def _scan(self) -> list[tuple[str, Record]]:
        """Every record with its split (``hashed_split``)."""
        raise NotImplementedError

    def _read(self, name: str) -> bytes:
        raise NotImplementedError

    def _content(self) -> str:
        raise NotImplementedError

    def variant(self) -> str:
        """How crops are cut and sized, beyond the files themselves ("" by default)."""
        return f"resize={self.resize[0]}x{self.resize[1]}" if self.resize else ""

    def fingerprint(self) -> str:
        """Changes when the files change, or how crops are made from them (``variant``)."""
        v = self.variant()
        return f"{self._content()}:{v}" if v else self._content()

    def scanned(self) -> list[tuple[str, Record]]:
        if self._all is None:
            self._all = self._scan()
            warn_case_clashes([rec.name for _, rec in self._all], str(self.path))
        return self._all

    def records(self, split: str) -> list[Record]:
        if split not in SPLITS:
            raise DataError(f"split {split!r} is not one of {SPLITS}")
        return [rec for where, rec in self.scanned() if split in ("all", where)]

    def load(self, record: Record) -> np.ndarray:
        """The crop of ``record`` as BGR uint8 (resized to ``resize`` when that is set)."""
        img = self._load(record)
        return cv2.resize(img, self.resize, interpolation=cv2.INTER_AREA) if self.resize else img

    def _load(self, record: Record) -> np.ndarray:
        return decode_image(self._read(record.name), f"{self.path}:{record.name}")

    def __getstate__(self) -> dict:  # picklable for worker processes: open handles are not carried
        state = self.__dict__.copy()
        state["_zip"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _split_folder(parts: list[str]) -> str | None:
    """``train`` or ``test`` from the folders of a path (``val``/``valid`` count as ``train``); None outside both."""
    for p in reversed(parts[:-1]):
        if p.lower() in ("train", "test"):
            return p.lower()
        if p.lower() in ("val", "valid", "validation"):
            return "train"
    return None


class Dl1Zip(Source):
    kind = "dl1_zip"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15):
        super().__init__(path, val_fraction)
        if not self.path.exists():
            raise DataError(f"data path {self.path} does not exist; expected a CCPD2019-dl1 zip")
        if self.path.is_dir():
            raise DataError(f"{self.path} is a directory, expected a zip file (a CCPD2019-dl1 zip); "
                            "name the zip itself, or rename the folder if it holds crops")
        if not zipfile.is_zipfile(self.path):
            raise DataError(f"{self.path} is not a zip file (or is truncated); expected a CCPD2019-dl1 zip")
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}  # repaired name -> stored name

    def _handle(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def _scan(self) -> list[tuple[str, Record]]:
        out = []
        for info in self._handle().infolist():
            if info.is_dir() or not info.filename.lower().endswith(IMAGE_EXTS):
                continue
            name = repair_zip_name(info.filename, bool(info.flag_bits & 0x800))
            self._names[name] = info.filename
            folder = _split_folder(name.split("/")) or "test"  # the dl1 layout: anything else is test data
            out.append((hashed_split(name, self.val_fraction, folder), _labelled(name, label_from_filename(name))))
        return out

    def _read(self, name: str) -> bytes:
        if not self._names:
            self.scanned()
        try:
            return self._handle().read(self._names.get(name, name))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:  # a damaged member, a CRC mismatch
            raise DataError(f"{self.path}:{name}: cannot be read from the zip ({e}); the zip may be damaged") from None

    def _content(self) -> str:
        h = hashlib.sha1()
        for info in self._handle().infolist():
            h.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


class CropFolder(Source):
    """Crops in ``train/`` and ``test/`` sub-folders keep those splits; crops outside them are split by a hash
    of their plate text (``hashed_split``), so two images of one plate never sit on both sides."""

    kind = "crop_folder"

    def _placed(self, rel: str, rec: Record) -> tuple[str, Record]:
        folder = _split_folder(rel.split("/"))
        key = rel if folder or not rec.text else rec.text
        return hashed_split(key, self.val_fraction, folder), rec

    def _scan(self) -> list[tuple[str, Record]]:
        csv_path = self.path / "labels.csv"
        if csv_path.is_file():
            return self._scan_csv(csv_path)
        out = []
        for p in sorted(self.path.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                rel = p.relative_to(self.path).as_posix()
                out.append(self._placed(rel, _labelled(rel, label_from_filename(rel))))
        return out

    def _scan_csv(self, csv_path: Path) -> list[tuple[str, Record]]:
        out = []
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
                raise DataError(f"{csv_path}: expected a header with columns file,label, got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                rel = (row["file"] or "").strip()
                if not rel:
                    raise DataError(f"{csv_path}:{line}: empty file name")
                out.append(self._placed(rel, _labelled(rel, (row["label"] or "").strip())))
        return out

    def _read(self, name: str) -> bytes:
        p = self.path / name
        if not p.is_file():
            raise DataError(f"{p}: listed but missing")
        try:
            return p.read_bytes()
        except OSError as e:
            raise DataError(f"{p}: cannot be read ({e.strerror})") from None

    def _content(self) -> str:
        h = hashlib.sha1()
        for p in sorted(self.path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(self.path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


# --- CCPD2019 photos ------------------------------------------------------------------------------------

CCPD_NAME = re.compile(r"^\d+-(\d+)_(\d+)-(\d+)&(\d+)_(\d+)&(\d+)-((?:\d+&\d+_){3}\d+&\d+)-([\d_]+)-(\d+)-(\d+)$")


def _ccpd_fields(name: str) -> tuple[str, ...]:
    m = CCPD_NAME.match(Path(name).stem)
    if not m:
        raise PlateError(f"file name {Path(name).name!r} is not a CCPD annotation "
                         "(area-tilt-bbox-corners-plate-brightness-blur)")
    return m.groups()


def parse_ccpd_name(name: str) -> tuple[str, np.ndarray, dict]:
    """CCPD file name → (plate, corners [4, 2] as bottom-right, bottom-left, top-left, top-right, meta)."""
    h_tilt, v_tilt, *_, corners, plate, brightness, blur = _ccpd_fields(name)
    pts = np.array([[int(v) for v in c.split("&")] for c in corners.split("_")], np.float32)
    text = plate_from_ccpd_indices([int(i) for i in plate.split("_")])
    meta = {"tilt_h": int(h_tilt), "tilt_v": int(v_tilt), "brightness": int(brightness), "blur": int(blur)}
    return text, pts, meta


def ccpd_bbox(name: str) -> tuple[int, int, int, int]:
    """The annotated bounding box ``(x1, y1, x2, y2)`` in a CCPD file name: left-top and right-bottom corners."""
    x1, y1, x2, y2 = (int(v) for v in _ccpd_fields(name)[2:6])
    return x1, y1, x2, y2


def rectify(photo: np.ndarray, corners: np.ndarray, height: int = 70, width: int = 220) -> np.ndarray:
    """Warp the quadrilateral (bottom-right, bottom-left, top-left, top-right) to an upright crop."""
    dst = np.array([[width - 1, height - 1], [0, height - 1], [0, 0], [width - 1, 0]], np.float32)
    m = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
    return cv2.warpPerspective(photo, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def cut_ccpd(photo: np.ndarray, name: str, crop: str = "corners") -> np.ndarray:
    """The plate of the CCPD photo ``name``: warped upright from its four corners to 220×70 (``corners``), or
    cut by its axis-aligned bounding box as CCPD2019-dl1 made its crops (``bbox``: tilted plates stay tilted,
    and the box may clip a character's edge)."""
    if crop == "corners":
        return rectify(photo, parse_ccpd_name(name)[1])
    if crop != "bbox":
        raise DataError(f"CCPD crop mode {crop!r} (data.ccpd_crop) is not one of {CROP_MODES}")
    x1, y1, x2, y2 = ccpd_bbox(name)
    h, w = photo.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise DataError(f"{name}: bounding box {ccpd_bbox(name)} leaves no plate inside the {w}×{h} photo")
    return np.ascontiguousarray(photo[y1:y2, x1:x2])


class CcpdPhotos(CropFolder):
    """CCPD2019 photos (``ccpd_base/``, ``ccpd_green/`` …), or any folder of them.

    Split by file-name hash: ``val_fraction`` of the photos go to ``test``; ``val`` is ``val_fraction`` of the
    rest (with 0.15: test 15 %, val 12.75 %, train 72.25 %). ``meta`` keeps the sub-dataset, tilt,
    brightness and blur for the analysis. ``crop``: ``corners`` or ``bbox`` (``cut_ccpd``)."""

    kind = "ccpd_photos"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15, crop: str = "corners"):
        super().__init__(path, val_fraction)
        if crop not in CROP_MODES:
            raise DataError(f"CCPD crop mode {crop!r} (data.ccpd_crop) is not one of {CROP_MODES}")
        self.crop = crop

    def _scan(self) -> list[tuple[str, Record]]:
        out = []
        for p in sorted(self.path.rglob("*")):
            if not (p.is_file() and p.suffix.lower() in IMAGE_EXTS):
                continue
            rel = p.relative_to(self.path).as_posix()
            subset = rel.split("/")[-2] if "/" in rel else self.path.name
            try:
                text, _, meta = parse_ccpd_name(rel)
                rec = Record(rel, text, {"subset": subset, **meta})
            except PlateError as e:
                rec = Record(rel, "", {"subset": subset}, error=str(e))
            out.append((hashed_split(rel, self.val_fraction), rec))  # by file name, as the shipped model was split
        return out

    def _load(self, record: Record) -> np.ndarray:
        # full resolution: the corners are in the photo's own pixels
        photo = decode_image(self._read(record.name), f"{self.path}:{record.name}", max_pixels=None)
        return cut_ccpd(photo, record.name, self.crop)

    def variant(self) -> str:
        return ",".join(v for v in (f"crop={self.crop}", super().variant()) if v)

    def __repr__(self) -> str:
        return f"CcpdPhotos({str(self.path)!r}, crop={self.crop!r})"


def load_image_file(path: str | os.PathLike, ccpd_crop: str = "corners") -> np.ndarray:
    """An image file as a plate crop: CCPD photos (annotated file names) are cut out by ``cut_ccpd``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image {p} not found")
    ccpd = bool(CCPD_NAME.match(p.stem))
    img = decode_image(p.read_bytes(), str(p), max_pixels=None if ccpd else MAX_PIXELS)
    return cut_ccpd(img, p.name, ccpd_crop) if ccpd else img


def looks_like_ccpd(folder: Path) -> bool:
    for p in folder.rglob("*"):
        if p.suffix.lower() in IMAGE_EXTS:
            return bool(CCPD_NAME.match(p.stem))
    return False


def open_source(path: str | os.PathLike, val_fraction: float = 0.15, ccpd_crop: str = "corners",
                resize: Sequence[int] | None = None) -> Source:
    """A dl1 zip, a CCPD2019 photo folder or a crops folder, by what ``path`` is; ``ccpd_crop`` says how a
    CCPD2019 photo becomes a crop (``cut_ccpd``), ``resize`` (width, height) the size every crop is brought to."""
    source = _open(path, val_fraction, ccpd_crop)
    if resize is not None:
        if len(resize) != 2 or min(resize) < MIN_SIDE:
            raise DataError(f"crop size {list(resize)} (data.resize_crops) must be [width, height], each at least {MIN_SIDE}")
        source.resize = (int(resize[0]), int(resize[1]))
    return source


def _open(path: str | os.PathLike, val_fraction: float, ccpd_crop: str) -> Source:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data path {p} does not exist; expected a CCPD2019-dl1 zip, a crops folder "
                        "or a CCPD2019 folder (or data.source: synthetic)")
    if p.is_file():
        if p.suffix.lower() != ".zip":
            raise DataError(f"{p} is a file but not a .zip; expected a CCPD2019-dl1 zip or a folder")
        return Dl1Zip(p, val_fraction)
    if p.suffix.lower() == ".zip":
        raise DataError(f"{p} is a directory, expected a zip file (a CCPD2019-dl1 zip); "
                        "name the zip itself, or rename the folder (no .zip) if it holds crops")
    if looks_like_ccpd(p):
        return CcpdPhotos(p, val_fraction, ccpd_crop)
    return CropFolder(p, val_fraction)
