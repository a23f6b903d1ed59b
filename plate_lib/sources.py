"""Sources: where plates come from. Each yields records ``(name, plate text)`` per split and loads images.

- ``Dl1Zip``: the CCPD2019-dl1 zip, read in place: ``<root>/{train,test}/<id>-<plate>.jpg``.
- ``CropFolder``: a folder of crops with ``labels.csv`` (``file,label``) or files named ``[<id>-]<plate>.jpg``;
  ``train/`` and ``test/`` sub-folders are used as splits when present.
- ``CcpdPhotos``: CCPD2019 photos whose file names carry the annotation; the plate is cut out with a
  perspective warp from its four corners.
- ``"synthetic"``: a dl1-layout zip made by ``synth.generate_zip`` the first time it is needed.

Splits are ``train``, ``val``, ``test`` and ``all``. Validation is a deterministic share of ``train`` chosen by
a hash of the file name, so it is the same on every run and machine and nothing is moved.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .plates import PlateError, check_plate, label_from_filename, plate_from_ccpd_indices, repair_zip_name

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
SPLITS = ("train", "val", "test", "all")
MIN_SIDE = 4  # pixels; anything smaller cannot hold a plate


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


def _labelled(name: str, label: str, meta: dict | None = None) -> Record:
    try:
        return Record(name, check_plate(label), meta or {})
    except PlateError as e:
        return Record(name, "", meta or {}, error=str(e))


def decode_image(buf: bytes, name: str) -> np.ndarray:
    """Bytes → BGR uint8 image; 16-bit, grey and alpha inputs are converted. Raises ``DataError`` naming ``name``."""
    if len(buf) == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{name}: not a decodable image ({len(buf)} bytes; expected JPEG or PNG)")
    if min(img.shape[:2]) < MIN_SIDE:
        raise DataError(f"{name}: image is {img.shape[1]}×{img.shape[0]} pixels, too small to hold a plate")
    return img


class Source:
    """Base: ``records(split)`` lists, ``load(record)`` decodes; ``fingerprint()`` changes when content does."""

    kind = "source"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15):
        self.path = Path(path)
        self.val_fraction = val_fraction
        self._all: list[tuple[str, Record]] | None = None  # (split folder, record)

    def _scan(self) -> list[tuple[str, Record]]:
        raise NotImplementedError

    def _read(self, name: str) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def scanned(self) -> list[tuple[str, Record]]:
        if self._all is None:
            self._all = self._scan()
        return self._all

    def records(self, split: str) -> list[Record]:
        if split not in SPLITS:
            raise DataError(f"split {split!r} is not one of {SPLITS}")
        return [rec for folder, rec in self.scanned() if self._in_split(folder, rec.name, split)]

    def _in_split(self, folder: str, name: str, split: str) -> bool:
        if split in ("all", folder):
            return split != "train" or not in_val(name, self.val_fraction)
        return split == "val" and folder == "train" and in_val(name, self.val_fraction)

    def load(self, record: Record) -> np.ndarray:
        return decode_image(self._read(record.name), f"{self.path}:{record.name}")

    def __getstate__(self) -> dict:  # picklable for worker processes: open handles are not carried
        state = self.__dict__.copy()
        state["_zip"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _split_folder(parts: list[str]) -> str:
    """``train`` or ``test`` from the folders of a path; crops outside both count as ``test``."""
    for p in reversed(parts[:-1]):
        if p.lower() in ("train", "test"):
            return p.lower()
        if p.lower() in ("val", "valid", "validation"):
            return "train"
    return "test"


class Dl1Zip(Source):
    kind = "dl1_zip"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15):
        super().__init__(path, val_fraction)
        if not self.path.exists():
            raise DataError(f"data path {self.path} does not exist; expected a CCPD2019-dl1 zip")
        if self.path.is_dir():
            raise DataError(f"{self.path} is a directory, expected a zip file (a CCPD2019-dl1 zip)")
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
            parts = name.split("/")
            out.append((_split_folder(parts), _labelled(name, label_from_filename(name))))
        return out

    def _read(self, name: str) -> bytes:
        if not self._names:
            self.scanned()
        return self._handle().read(self._names.get(name, name))

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for info in self._handle().infolist():
            h.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


class CropFolder(Source):
    kind = "crop_folder"

    def _scan(self) -> list[tuple[str, Record]]:
        csv_path = self.path / "labels.csv"
        if csv_path.is_file():
            return self._scan_csv(csv_path)
        out = []
        for p in sorted(self.path.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
                rel = p.relative_to(self.path).as_posix()
                out.append((_split_folder(rel.split("/")), _labelled(rel, label_from_filename(rel))))
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
                out.append((_split_folder(rel.split("/")), _labelled(rel, (row["label"] or "").strip())))
        return out

    def _read(self, name: str) -> bytes:
        p = self.path / name
        if not p.is_file():
            raise DataError(f"{p}: listed but missing")
        return p.read_bytes()

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for p in sorted(self.path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(self.path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


# --- CCPD2019 photos ------------------------------------------------------------------------------------

CCPD_NAME = re.compile(r"^\d+-(\d+)_(\d+)-\d+&\d+_\d+&\d+-((?:\d+&\d+_){3}\d+&\d+)-([\d_]+)-(\d+)-(\d+)$")


def parse_ccpd_name(name: str) -> tuple[str, np.ndarray, dict]:
    """CCPD file name → (plate, corners [4, 2] as bottom-right, bottom-left, top-left, top-right, meta)."""
    stem = Path(name).stem
    m = CCPD_NAME.match(stem)
    if not m:
        raise PlateError(f"file name {Path(name).name!r} is not a CCPD annotation "
                         "(area-tilt-bbox-corners-plate-brightness-blur)")
    h_tilt, v_tilt, corners, plate, brightness, blur = m.groups()
    pts = np.array([[int(v) for v in c.split("&")] for c in corners.split("_")], np.float32)
    text = plate_from_ccpd_indices([int(i) for i in plate.split("_")])
    meta = {"tilt_h": int(h_tilt), "tilt_v": int(v_tilt), "brightness": int(brightness), "blur": int(blur)}
    return text, pts, meta


def rectify(photo: np.ndarray, corners: np.ndarray, height: int = 70, width: int = 220) -> np.ndarray:
    """Warp the quadrilateral (bottom-right, bottom-left, top-left, top-right) to an upright crop."""
    dst = np.array([[width - 1, height - 1], [0, height - 1], [0, 0], [width - 1, 0]], np.float32)
    m = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
    return cv2.warpPerspective(photo, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


class CcpdPhotos(CropFolder):
    """CCPD2019 photos (``ccpd_base/``, ``ccpd_green/`` …), or any folder of them.

    Split by file-name hash: ``val_fraction`` of the photos go to ``test``; ``val`` is ``val_fraction`` of the
    rest (with 0.15: test 15 %, val 12.75 %, train 72.25 %). ``meta`` keeps the sub-dataset, tilt,
    brightness and blur for the analysis."""

    kind = "ccpd_photos"

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
            # two hash draws: val_fraction to val, the same share to test, the rest to train
            folder = "test" if in_val("test:" + Path(rel).name, self.val_fraction) else "train"
            out.append((folder, rec))
        return out

    def load(self, record: Record) -> np.ndarray:
        photo = super().load(record)
        _, corners, _ = parse_ccpd_name(record.name)
        return rectify(photo, corners)


def load_image_file(path: str | os.PathLike) -> np.ndarray:
    """An image file as a plate crop: CCPD photos (annotated file names) are rectified from their corners."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image {p} not found")
    img = decode_image(p.read_bytes(), str(p))
    if CCPD_NAME.match(p.stem):
        _, corners, _ = parse_ccpd_name(p.name)
        img = rectify(img, corners)
    return img


def looks_like_ccpd(folder: Path) -> bool:
    for p in folder.rglob("*"):
        if p.suffix.lower() in IMAGE_EXTS:
            return bool(CCPD_NAME.match(p.stem))
    return False


def open_source(path: str | os.PathLike, val_fraction: float = 0.15) -> Source:
    """A dl1 zip, a CCPD2019 photo folder or a crops folder, by what ``path`` is."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data path {p} does not exist; expected a CCPD2019-dl1 zip, a crops folder "
                        "or a CCPD2019 folder (or data.source: synthetic)")
    if p.is_file():
        if p.suffix.lower() != ".zip":
            raise DataError(f"{p} is a file but not a .zip; expected a CCPD2019-dl1 zip or a folder")
        return Dl1Zip(p, val_fraction)
    if p.suffix.lower() == ".zip":
        raise DataError(f"{p} is a directory, expected a zip file (a CCPD2019-dl1 zip)")
    if looks_like_ccpd(p):
        return CcpdPhotos(p, val_fraction)
    return CropFolder(p, val_fraction)
