"""Prediction as ``plate predict`` does it: the image files that its inputs name, one row per file (file, plate,
confidence, kind, status, error, box) read in batches, and the rows written as TSV, CSV or JSON.

- Inputs (``expand_inputs``): a file as given; a folder's image files (by extension, ``sources.IMAGE_EXTS``),
  recursively and sorted; a zip's image members, sorted, each named ``<zip>:<member>`` (``ZipMember``; read in
  place); a glob pattern's image files, sorted (for shells that do not expand it); ``-``: the paths on standard
  input, one a line, each taken the same way. A name that leads to no file is an ``error`` row.
- Status: ``ok``; ``low_confidence``, a reading below ``predict.min_confidence``; ``not_a_crop``, an image whose
  size or aspect ratio is nothing like a plate crop's (``predict.crop_aspect``, ``predict.max_crop_height``) and
  in which ``predict.find_in_photos`` finds no plate by its colour (or is false), which is not read; ``error``, a
  file that cannot be read (the message says why). CCPD2019 photos (annotation in the file name) are cut out by
  their annotation, as everywhere in plate_lib, and are never ``not_a_crop``.
- Box: for a whole photo, where in it the plate read was found (``x1 y1 x2 y2``, the file's pixels; JSON: a list);
  empty for a crop.
- Kind: ``green`` for an 8-character plate; for a 7-character one ``blue`` or ``yellow`` by the colour of the crop
  (``colours.plate_colour``: the grayscale model cannot tell them apart), ``unknown`` when the colour is not clear.
  The reading itself is decoded by the crop's colour too where ``predict.by_colour`` says so (``colours``).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from .colours import plate_colour
from .config import Config, PredictConfig
from .files import files_under
from .images import header_size, image_kind
from .plates import PlateError, is_large_new_energy
from .sources import (
    CCPD_NAME,
    IMAGE_EXTS,
    DataError,
    Dl1Zip,
    image_file_bytes,
    image_files,
    image_from_bytes,
    is_image_name,
    log_mac_metadata,
    shown,
)

COLUMNS = ("file", "plate", "confidence", "kind", "status", "error", "box")
STATUSES = ("ok", "low_confidence", "not_a_crop", "error")
FORMATS = ("tsv", "csv", "json")
GLOB_CHARS = "*?["
NOT_A_CROP = ("plate_lib reads plate crops, CCPD2019 photos with their annotation in the file name, and a plate it "
              "finds by its colour in a whole photo where predict.find_in_photos is true (false here)")
NOT_FOUND = ("a whole photo, and no region of a plate colour (blue, yellow or green) shaped like a plate is in it "
             "(predict.find_in_photos looks for the plate by its colour)")

# --- inputs ---------------------------------------------------------------------------------------------


def _is_image(p: Path) -> bool:
    """An image file by its extension: one read (``IMAGE_EXTS``) or one of a format not read (``OTHER_IMAGE_EXTS``,
    an ``error`` row saying so rather than a file passed over)."""
    return is_image_name(p.name) and p.is_file()


def _images_in(folder: Path) -> list[Path]:
    listing = files_under(folder)
    log_mac_metadata(folder, listing)
    return [folder / rel for rel in image_files(folder, listing)]


class ZipMember(str):
    """An image inside a zip, as an input: the string ``<zip>:<member>`` (what the row's ``file`` says), with the
    ``archive`` and the ``member`` name to read it by."""

    archive: str
    member: str

    def __new__(cls, archive: str, member: str) -> ZipMember:
        self = super().__new__(cls, f"{archive}:{member}")
        self.archive, self.member = archive, member
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # pickle and copy rebuild it from both parts
        return self.archive, self.member


NO_ZIP_IMAGES = f"the zip holds no image files ({', '.join(IMAGE_EXTS)})"


def _zip_members(item: str, p: Path) -> list[tuple[str, str]]:
    """The image members of the zip ``p`` (given as ``item``) as inputs, sorted, or the row that says why there are
    none; a name stored twice is an error row (which is meant?)."""
    if not zipfile.is_zipfile(p):
        return [(item, f"{item}: not a readable zip file (damaged or cut short)")]
    try:
        source = Dl1Zip(p)
        try:
            members = source.image_members()
        finally:
            source.close()
    except DataError as e:
        return [(item, str(e))]
    return [(ZipMember(item, m), "" if times == 1 else f"stored {times} times in the zip (which is meant?)")
            for m, times in members] or [(item, NO_ZIP_IMAGES)]


def _expand(item: str) -> list[tuple[str, str]]:
    try:
        return _expand_path(item)
    except (OSError, ValueError, RuntimeError) as e:  # a name too long, with a NUL, …: its row, not the run's end
        return [(item, f"cannot be read as a path ({e.strerror if isinstance(e, OSError) and e.strerror else e})")]


def _expand_path(item: str) -> list[tuple[str, str]]:
    p = Path(os.path.expanduser(item))  # ~user of no such user: left as it is, then no such file
    if p.is_file() and p.suffix.lower() == ".zip":
        return _zip_members(str(p) if item.startswith("~") else item, p)
    if p.is_dir():
        found = _images_in(p)
        return [(str(f), "") for f in found] or [(item, f"folder holds no image files ({', '.join(IMAGE_EXTS)})")]
    if p.exists() or not any(c in item for c in GLOB_CHARS):  # a file, shown as given (~ expanded)
        return [(str(p) if item.startswith("~") and p.exists() else item, "" if p.exists() else "no such file or folder")]
    found: list[tuple[str, str]] = []
    for mp in sorted(map(Path, glob.glob(str(p), recursive=True))):  # sorted as paths, as a folder's files are
        if mp.is_file() and mp.suffix.lower() == ".zip":  # its images; a zip of none is no image the pattern matched
            found += [f for f in _zip_members(str(mp), mp) if f[1] != NO_ZIP_IMAGES]
        else:
            found += [(str(f), "") for f in (_images_in(mp) if mp.is_dir() else [mp] if _is_image(mp) else [])]
    return found or [(item, f"the pattern matches no image file ({', '.join(IMAGE_EXTS)})")]


def expand_inputs(items: Iterable[str], stdin: TextIO | None = None) -> list[tuple[str, str]]:
    """``(path, error)`` for each image file that ``items`` name, in order (see the module's docstring); the error
    is "" for a file found, else why nothing was: such a name becomes an ``error`` row."""
    out: list[tuple[str, str]] = []
    for item in items:
        if item != "-":
            out += _expand(item)
            continue
        text = _names_on(stdin) if stdin else ""
        if any(c < " " and c not in "\0\t\n\r" or c == "\x7f" for c in text):  # an image's bytes, not names
            out.append(("-", "standard input holds binary data, not file names: give an image as an argument, or "
                             "pipe its name (e.g. `find crops -name '*.jpg' | plate predict -`)"))
            continue
        names = text.split("\0") if "\0" in text else text.splitlines()  # find -print0's names, or a name a line
        listed = [name.strip() for name in names if name.strip()]
        out += [f for line in listed for f in _expand(line)] or [("-", "standard input named no files")]
    return out


def _names_on(stdin: TextIO) -> str:
    """What ``stdin`` holds, its bytes read as the file system reads names (``os.fsdecode``: bytes that are not
    UTF-8 kept as surrogates, so a GBK name from `find` is a row, written with ``\\xNN`` escapes)."""
    raw = getattr(stdin, "buffer", None)
    return os.fsdecode(raw.read()) if raw is not None else stdin.read()


# --- what an image is -----------------------------------------------------------------------------------


PHOTO_ASPECT = 2.4
"""Width/height below which a large image may be a camera's whole frame (4:3, 3:2, 16:9, a phone's 19.5:9 is 2.17,
21:9 is 2.33); a plate's own is 3.1-3.4, so a close-up crop of one with a margin is wider than this at any size."""


def crop_problem(width: int, height: int, settings: PredictConfig) -> str:
    """Why a ``width`` × ``height`` image is no plate crop ("" when it could be one): a width/height outside
    ``settings.crop_aspect``, or taller than ``settings.max_crop_height`` and shaped like a photo (``PHOTO_ASPECT``)."""
    lo, hi = settings.crop_aspect
    if not lo <= width / height <= hi:
        why = f"its width/height {width / height:.2f} is outside predict.crop_aspect [{lo:g}, {hi:g}]"
    elif height > settings.max_crop_height and width / height < PHOTO_ASPECT:
        why = (f"it is taller than predict.max_crop_height ({settings.max_crop_height} px) and shaped like a photo "
               f"(width/height below {PHOTO_ASPECT:g}); a plate crop this large: raise predict.max_crop_height")
    else:
        return ""
    return f"{width}×{height} is not shaped like a plate crop: {why}"


def plate_kind(text: str, bgr: np.ndarray) -> str:
    """``green`` (8 characters; ``yellow-green`` for a large vehicle's, ``plates.is_large_new_energy``), ``blue`` or
    ``yellow`` (7, by ``plate_colour``), else ``unknown``."""
    if len(text) == 8:
        return "yellow-green" if is_large_new_energy(text) else "green"
    colour = plate_colour(bgr) if len(text) == 7 else "unknown"
    return colour if colour in ("blue", "yellow") else "unknown"  # a 7-character reading of a green crop: unclear


# --- reading --------------------------------------------------------------------------------------------


def _row(file: str, status: str, error: str = "", plate: str = "", confidence: float | None = None,
         kind: str = "", box: list[int] | None = None) -> dict:
    return {"file": file, "plate": plate, "confidence": confidence, "kind": kind, "status": status, "error": error,
            "box": box}


def load_crop(path: str, cfg: Config, settings: PredictConfig,
              zips: dict[str, Dl1Zip] | None = None) -> tuple[np.ndarray | None, dict | None, float]:
    """The image to read from ``path`` (a file, or a ``ZipMember``: ``zips`` holds the zip open between its members,
    one zip at a time), or the row that says why there is none (``error``, ``not_a_crop``); and 0 for a crop, or
    for a whole photo that ``predict.find_in_photos`` reads, the factor from its pixels as decoded to the file's
    (1; 2, 4 or 8 where it was decoded reduced, ``images.MAX_PIXELS``)."""
    try:
        if isinstance(path, ZipMember):
            zips = {} if zips is None else zips
            if path.archive not in zips:
                for other in zips.values():  # inputs come a zip at a time: no more than one left open
                    other.close()
                zips.clear()
                zips[path.archive] = Dl1Zip(Path(path.archive).expanduser(), max_file_mb=cfg.data.max_file_mb)
            buf, name = zips[path.archive].read_member(path.member), path.member
        else:
            buf, name = image_file_bytes(path, cfg.data.max_file_mb), Path(path).name
        image = image_from_bytes(buf, name, path, cfg.data.ccpd_crop)
    except (DataError, PlateError, OSError, cv2.error) as e:
        return None, _row(path, "error", str(e)), 0.0
    if not CCPD_NAME.match(Path(name).stem):  # a CCPD photo is cut by its annotation: a crop by construction
        problem = crop_problem(image.shape[1], image.shape[0], settings)
        if problem and not settings.find_in_photos:
            return None, _row(path, "not_a_crop", f"{problem}. {NOT_A_CROP}"), 0.0
        if problem:
            size = header_size(buf, image_kind(buf))
            return image, None, max(1, round(max(size) / max(image.shape[:2]))) if size else 1.0
    return image, None, 0.0


def read_files(model, cfg: Config, settings: PredictConfig, inputs: list[tuple[str, str]], device="cpu",
               progress: bool = False, batch: int | None = None) -> Iterator[dict]:
    """One row per input, in order, reading ``batch`` files at a time (None: ``cfg.training.eval_batch_size``):
    crops by ``reading.read_plates``; whole photos, where ``predict.find_in_photos`` says so, by
    ``reading.read_photos`` (the plate found by its colour, its box in the row)."""
    from tqdm import tqdm

    from .reading import read_photos, read_plates

    batch = batch or cfg.training.eval_batch_size
    zips: dict[str, Dl1Zip] = {}  # the zip being read, open between its members
    how = (settings.rectify_below, settings.tta, batch, settings.by_colour)
    with tqdm(total=len(inputs), desc="plates", unit="file", disable=not progress, mininterval=0.5) as bar, \
            contextlib.ExitStack() as closing:
        closing.callback(lambda: [z.close() for z in zips.values()])
        for start in range(0, len(inputs), batch):
            rows, crops, read = [], [], []
            for path, error in inputs[start:start + batch]:
                image, row, scale = (None, _row(path, "error", error), 0.0) if error else load_crop(path, cfg, settings, zips)
                if scale:  # a whole photo: read at once, so that a batch never holds more than one
                    ((text, conf, box),) = read_photos(model, cfg, [image], device, *how)
                    row = _in_photo(path, image, text, conf, box, scale, settings)
                elif image is not None:
                    read.append(len(rows))
                    crops.append(image)
                rows.append(row)
            readings = read_plates(model, cfg, crops, device, *how) if crops else []
            for i, crop, (text, conf) in zip(read, crops, readings, strict=True):
                rows[i] = _reading(inputs[start + i][0], text, conf, settings, plate_kind(text, crop))
            bar.update(len(rows))
            yield from rows


def _in_photo(path: str, photo: np.ndarray, text: str, conf: float, box: tuple[int, int, int, int] | None,
              scale: float, settings: PredictConfig) -> dict:
    """The row of a whole photo read by ``reading.read_photos`` (``box`` in its pixels as decoded, ``scale`` times
    smaller than the file's), or the ``not_a_crop`` row where no plate was found."""
    if box is None:
        return _row(path, "not_a_crop", f"{NOT_FOUND}; {crop_problem(photo.shape[1], photo.shape[0], settings)}")
    x1, y1, x2, y2 = box
    return _reading(path, text, conf, settings, plate_kind(text, photo[y1:y2, x1:x2]), [round(v * scale) for v in box])


def _reading(file: str, text: str, conf: float, settings: PredictConfig, kind: str, box: list[int] | None = None) -> dict:
    status = "ok" if conf >= settings.min_confidence else "low_confidence"
    return _row(file, status, plate=text, confidence=conf, kind=kind, box=box)


# --- output ---------------------------------------------------------------------------------------------


def _printable(row: dict) -> dict:
    """``row`` with bytes that a file name could not decode (kept as surrogates) shown as ``\\xNN`` escapes
    (``sources.shown``): on a UTF-8 terminal or file, writing them as they are raised UnicodeEncodeError mid-output."""
    return {k: shown(v) if isinstance(v, str) else v for k, v in row.items()}


def _cells(row: dict) -> list[str]:
    conf, box = row["confidence"], row["box"]
    shown = {"confidence": "" if conf is None else f"{conf:.4f}", "box": "" if box is None else " ".join(map(str, box))}
    return [shown[k] if k in shown else str(row[k]) for k in COLUMNS]


def write_rows(rows: Iterable[dict], fmt: str, out: TextIO) -> dict[str, int]:
    """Write the rows as ``tsv`` (a header line, tabs; tabs and line breaks in a value become spaces), ``csv``
    (a value with a line break quoted, ``\\r`` too)
    or ``json`` (an array of objects, one a line; no confidence is null) as they come; returns the count of each
    status. A file name that is not UTF-8 is written with its undecodable bytes as ``\\xNN`` (``_printable``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    counts = dict.fromkeys(STATUSES, 0)
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)  # a row with a \r: csv quotes \n only
    if fmt == "json":
        out.write("[")
    elif writer:
        writer.writerow(COLUMNS)
    else:
        out.write("\t".join(COLUMNS) + "\n")
    for n, row in enumerate(map(_printable, rows)):
        counts[row["status"]] += 1
        if fmt == "json":
            conf = row["confidence"]
            item = {**row, "confidence": None if conf is None else round(conf, 4)}
            out.write(("," if n else "") + "\n" + json.dumps(item, ensure_ascii=False))
        elif writer:
            cells = _cells(row)
            (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
        else:
            out.write("\t".join(c.replace("\t", " ").replace("\n", " ").replace("\r", " ") for c in _cells(row)) + "\n")
    if fmt == "json":
        out.write("\n]\n")
    return counts
