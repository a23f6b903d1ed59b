"""Sources: where plates come from. Each yields records ``(name, plate text)`` per split and loads images.

- ``Dl1Zip``: the CCPD2019-dl1 zip, read in place: ``<root>/{train,test}/<id>-<plate>.jpg``; or a zipped folder
  of crops, labelled by the label list it holds (one) or by its file names, split as the folder would be.
- ``CropFolder``: a folder of crops with ``labels.csv`` (``file,label``, or other names label lists use:
  ``label_columns``; commas, tabs or semicolons), ``labels.txt`` (lines ``<file> <plate>``, a tab or spaces
  between, as PaddleOCR's and CBLPRD's lists are) or files named ``[<id>-]<plate>.jpg``;
  ``train/`` and ``test/`` sub-folders are used as splits when present, else the split is drawn by a hash of
  the plate text (test 15 %, validation 15 % of the rest), so every image of one plate lands in one split.
- ``CcpdPhotos``: CCPD2019 photos whose file names carry the annotation; the plate is cut out with a
  perspective warp from its four corners (``crop="corners"``), or by its annotated bounding box as the
  CCPD2019-dl1 crops were made (``crop="bbox"``).
- ``"synthetic"``: a dl1-layout zip made by ``synth.generate_zip`` the first time it is needed.

Reading is bounded: a file or zip member over ``max_file_mb`` (``data.max_file_mb``, judged by its size on
disk or its declared size in the zip, before reading) is a bad sample, and images are decoded within the limits
of ``images.decode_image``. Names from the data (label list entries) never lead outside the source's folder.

Labels can be corrected without touching the data (``label_fixes``: a CSV of ``file,label[,note]``, the name as
the source lists it and the plate it really shows; ``data.label_fixes`` names one per source). A corrected plate
keeps the split its published label gave it (it joins the split of another image of the same plate, if one
lies elsewhere), so fixing labels does not reshuffle the splits.

Splits are ``train``, ``val``, ``test`` and ``all``. Validation is a deterministic share of ``train`` chosen by
a hash of the file name (of the plate text in hash-split folders), so it is the same on every run and
machine and nothing is moved.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import lzma
import os
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import cv2
import numpy as np

from .files import files_under, some
from .images import MIN_SIDE, DataError, decode_image, decode_photo, read_file, too_large
from .plates import (
    PlateError,
    check_plate,
    gbk_plate_name,
    label_from_filename,
    plate_from_ccpd_indices,
    repair_zip_name,
)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # what images.decode_image reads (by the files' first bytes)
OTHER_IMAGE_EXTS = (".tif", ".tiff", ".gif", ".heic", ".heif", ".avif", ".jp2")  # images it does not: a bad sample each
ANY_IMAGE_EXTS = IMAGE_EXTS + OTHER_IMAGE_EXTS  # every file a source or plate predict takes for an image
SPLITS = ("train", "val", "test", "all")
CROP_MODES = ("corners", "bbox")  # how a CCPD2019 photo becomes a crop (data.ccpd_crop)
SPLIT_MODES = ("hash", "official")  # how CCPD2019 photos are split (data.ccpd_split)
CORNER_SLACK = 0.05  # a CCPD annotation's corner may lie this share of the photo's size outside it, no more
MAX_FILE_MB = 16.0  # default of data.max_file_mb: a plate crop or a CCPD photo is well under 1 MB
LABEL_ENCODINGS = ("utf-8-sig", "gb18030")  # UTF-8 with or without a BOM; GB18030, a superset of GBK and GB2312
MAX_BAD_ROWS = 1000  # past this many, a labels.csv of mostly bad rows (label, missing file) is refused as read

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # path inside the zip or folder: shown in errors and galleries
    text: str  # the plate, checked against the plate format ("" when the label is bad)
    meta: dict = field(default_factory=dict, compare=False)  # e.g. CCPD sub-dataset, tilt, brightness, blur
    error: str = ""  # why the label is bad, if it is
    bad_label: bool = field(default=False, compare=False)  # the error is the label's (a fix can mend it), not the file's


def in_val(name: str, val_fraction: float) -> bool:
    """Deterministic validation membership from the file name alone (the same on every machine)."""
    h = int.from_bytes(hashlib.blake2b(Path(name).name.encode("utf-8"), digest_size=8).digest(), "big")
    return h / 2**64 < val_fraction


def hashed_split(key: str, val_fraction: float, folder: str | None = None) -> str:
    """``train``, ``val`` or ``test`` for one record. ``folder`` is the split its data layout gives (``train``,
    ``val`` or ``test``); without one, ``val_fraction`` of the keys go to ``test`` by a hash of ``key``. Under
    ``train`` (given or left), ``val`` is ``val_fraction`` of them, by a second hash."""
    if folder is None:
        folder = "test" if in_val("test:" + Path(key).name, val_fraction) else "train"
    return "val" if folder == "train" and in_val(key, val_fraction) else folder


def _labelled(name: str, label: str, meta: dict | None = None) -> Record:
    try:
        return Record(name, check_plate(label), meta or {})
    except PlateError as e:
        gbk = gbk_plate_name(name.encode("utf-8", "surrogateescape"))  # GBK bytes that are UTF-8 too: 鲁 as ³
        hint = (f"; its name's bytes read as GBK say {gbk.rsplit('/', 1)[-1]!r}: rename the file in UTF-8 (e.g. "
                "`convmv -f gbk -t utf-8 --notest`)") if gbk and gbk != name else ""
        return Record(name, "", meta or {}, error=str(e) + hint, bad_label=True)


def inside(name: str) -> str | None:
    """``name`` (from a data file) as a relative path that stays in its folder, backslashes read as separators;
    None when it would leave the folder: absolute, on a drive, through ``..``, or holding a NUL."""
    rel = name.replace("\\", "/")
    if not rel or rel.startswith("/") or PureWindowsPath(name).drive or "\0" in rel or ".." in rel.split("/"):
        return None
    rel = posixpath.normpath(rel)  # ./a.jpg and a//b.jpg name a.jpg and a/b.jpg: one file, one spelling
    return None if rel == "." else rel


def not_readable(rel: str) -> str:
    """Why the file ``rel`` found in a source cannot be a sample ("" when it can): a name that is not UTF-8 (bytes
    the file system could not decode, kept as surrogates), or an image format ``images.decode_image`` does not read."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        try:
            gbk = f": as GBK it reads {raw.decode('gb18030')!r}"
        except UnicodeDecodeError:
            gbk = ""
        return (f"its file name is not UTF-8 ({raw!r}{gbk}); rename the file in UTF-8 (e.g. `convmv -f gbk -t "
                "utf-8 --notest`), as labels and galleries need its name")
    if rel.lower().endswith(OTHER_IMAGE_EXTS):
        return f"{Path(rel).suffix} images are not read; convert it to JPEG or PNG (plate_lib reads {', '.join(IMAGE_EXTS)})"
    return ""


def shown(rel: str) -> str:
    """``rel`` safe to print and write: bytes a file system name could not decode shown as escapes (and any other
    lone surrogate, as a Windows name may hold, as ``\\udXXX``)."""
    try:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return rel.encode("utf-8", "backslashreplace").decode("utf-8")


def warn_case_clashes(names: list[str], where: str) -> list[list[str]]:
    """Groups of names that differ only in case. They are distinct files here and all are kept, but they
    collide when the data is copied to a case-insensitive file system (macOS, Windows): say so."""
    first: dict[str, str] = {}  # lower-case name → the first name seen (no set per name: a million names is fine)
    groups: dict[str, set[str]] = {}
    for n in names:
        key = n.lower()
        seen = first.setdefault(n if key == n else key, n)
        if seen != n:
            groups.setdefault(key, {seen}).add(n)
    clashes = [sorted(g) for g in groups.values()]
    if clashes:
        log.warning("%s: %d group(s) of file names differ only in case (all kept; they would collide on a "
                    "case-insensitive file system): %s", where, len(clashes),
                    "; ".join(some(g, 5, " / ") for g in clashes[:10]))
    return clashes


LIST_BYTES = 256 * 2**20  # a label or split list, read whole: millions of rows (CBLPRD-330k's labels.txt is 14 MB)


def list_too_large(name: str, size: int, max_bytes: int, declared: bool = False) -> DataError:
    return DataError(f"{name}: a list of {size / 2**20:.1f} MB{' (its declared size in the zip)' if declared else ''}, "
                     f"over the {max_bytes / 2**20:g} MB a label or split list is read up to; is it the list of this "
                     "data? Split the data into folders of their own, each with its list")


def labels_text(csv_path: Path, max_bytes: int = LIST_BYTES) -> str:
    """A label CSV's text, in UTF-8 (with or without a BOM) or GB18030/GBK, as Chinese Windows tools write it."""
    return decode_labels(read_file(csv_path, max_bytes, too_big=list_too_large), str(csv_path))


def decode_labels(raw: bytes, where: str) -> str:
    """A label list's bytes as text (``labels_text``); ``where`` names it in the error."""
    for encoding in LABEL_ENCODINGS:
        try:
            return raw.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
    hint = " (it starts with a UTF-16 byte-order mark)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    raise DataError(f"{where}: cannot be read as UTF-8, UTF-8 with BOM, or GB18030/GBK{hint}; "
                    "save it in one of those (UTF-8 is best)")


LABEL_LISTS = ("labels.csv", "labels.txt")  # a folder's label list: a CSV with a header, or lines "<file> <plate>"


def label_list(folder: Path) -> Path | None:
    """The label list in ``folder`` (``LABEL_LISTS``), None where there is none; both is an error (which is meant?)."""
    found = [folder / name for name in LABEL_LISTS if (folder / name).is_file()]
    if len(found) > 1:
        raise DataError(f"{folder} holds both labels.csv and labels.txt; keep the one that labels its crops "
                        "(or move the other away)")
    return found[0] if found else None


def csv_delimiter(text: str) -> str:
    """A label CSV's delimiter: the commonest of comma, tab and semicolon in its header line (comma on a tie)."""
    header = text.split("\n", 1)[0]
    return max(",\t;", key=header.count)


@dataclass(frozen=True)
class LabelList:
    """A label list a source holds (``LABEL_LISTS``): ``where`` names it in messages (its path, or zip:member),
    ``folder`` the folder its entries are relative to (as named in messages), ``base`` that folder inside the
    source (``""``, or ``crops/`` in a zip), which every entry's name is given."""

    where: str
    name: str
    folder: str
    base: str = ""


def label_rows(lst: LabelList, text: str) -> Iterator[tuple[int, str, str]]:
    """``(line, file, label)`` of each row of the label list ``lst`` whose text is ``text``."""
    if lst.name.endswith(".txt"):
        yield from txt_rows(text)
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=csv_delimiter(text))
    try:
        file_col, label_col = label_columns(lst.where, reader.fieldnames)
        for row in reader:
            yield reader.line_num, row[file_col] or "", row[label_col] or ""
    except csv.Error as e:
        raise DataError(f"{lst.where}:{reader.line_num}: not a readable CSV row ({e})") from None


def txt_rows(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, file, label)`` of each line of a labels.txt: ``<file><TAB><plate>`` (PaddleOCR's recognition
    lists) or ``<file> <plate>`` (spaces; CBLPRD-330k's), anything after the plate ignored (CBLPRD's plate type),
    ``<plate> <file>`` read the other way round, commas or semicolons where a line has neither tabs nor spaces (a
    CSV saved as .txt); blank lines and ``#`` comments passed over, and a first line that is a header (``file
    label``, ``plate file``) too."""
    first = True
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else _spaced_fields(line)
        if len(parts) == 1 and (sep := max(",;", key=line.count)) in line:  # a CSV saved as .txt: read as one
            parts = line.split(sep)
        if first and ({p.strip().lower() for p in parts[:2]} <= COLUMN_NAMES or parts[0].strip().lower() in FILE_COLUMNS):
            first = False  # a header, either way round (file label, plate file)
            continue
        first = False
        file, label = parts[0].strip(), parts[1].strip() if len(parts) > 1 else ""
        if is_image_name(label) and not is_image_name(file):  # "<plate> <file>": the order some lists use
            file, label = label, file
        yield n, file, label


_EXT = "|".join(re.escape(e) for e in sorted(ANY_IMAGE_EXTS, key=len, reverse=True))
_FILE_FIRST = re.compile(rf"^(.+?(?:{_EXT}))\s+(\S+)", re.IGNORECASE)  # "<file> <plate>[ anything]"
_FILE_LAST = re.compile(rf"^(\S+)\s+(.+?(?:{_EXT}))\s*$", re.IGNORECASE)  # "<plate> <file>"


def _spaced_fields(line: str) -> list[str]:
    """A labels.txt line without tabs as its fields: a file name (which may hold spaces: ``苏E12345 (2).jpg``) up to
    its image extension, then the plate; or the plate, then the file name; else split at spaces."""
    if m := _FILE_FIRST.match(line):
        return [m[1], m[2]]
    if m := _FILE_LAST.match(line):
        return [m[1], m[2]]
    return line.split()


def is_image_name(name: str) -> bool:
    """Whether a file is an image by its name's extension (``ANY_IMAGE_EXTS``, any case), and not macOS's metadata
    twin of one (``mac_metadata``)."""
    return has_image_ext(name) and not mac_metadata(name)


def has_image_ext(name: str) -> bool:
    """Whether a file name ends in an image's extension (``ANY_IMAGE_EXTS``, any case)."""
    return os.path.splitext(name)[1].lower() in ANY_IMAGE_EXTS


def mac_metadata(name: str) -> bool:
    """Whether a path is macOS's metadata of a file, not the file: an AppleDouble twin ``._<name>`` (a copy to a
    FAT or network drive, a tar made on a Mac) or anything under ``__MACOSX/`` (Finder's Compress): 4 KB of
    attributes named as the image is, never an image."""
    parts = name.replace("\\", "/").split("/")
    return parts[-1].startswith("._") or "__MACOSX" in parts[:-1]


def load_records(source: Source, records: Sequence[Record], skip_bad: bool = False
                 ) -> tuple[list[Record], list[np.ndarray]]:
    """The records that load and their crops (``source.load``); one that does not is a ``DataError``, or with
    ``skip_bad`` (``data.skip_bad``) left out, counted and named in the log, as ``dataset.load_split`` leaves it."""
    kept, crops, bad = [], [], []
    for rec in records:
        try:
            crops.append(source.load(rec))
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(f"{rec.name} ({e})")
            continue
        kept.append(rec)
    if bad:
        log.warning("%s: skipped %d bad sample(s) (data.skip_bad): %s", source.path, len(bad), some(bad, 5, "; "))
    return kept, crops


def log_mac_metadata(where: str | Path, names: Sequence[str]) -> None:
    """Say in the log how many of ``names`` (a source's files) are macOS metadata, left out as no images."""
    meta = [shown(n) for n in names if mac_metadata(n) and has_image_ext(n)]
    if meta:
        log.info("%s: %d macOS metadata file(s) named as images (._<name>, __MACOSX/) are not images; left out: %s",
                 where, len(meta), some(meta, 5))


# labels.csv's two columns, by the names label lists use (ours first; fast-plate-ocr's image_path,plate_text; …)
FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_path", "img", "path")
LABEL_COLUMNS = ("label", "plate", "plate_text", "text", "plate_number")
COLUMN_NAMES = frozenset(FILE_COLUMNS + LABEL_COLUMNS)


def label_columns(csv_path: str | Path, fieldnames: list[str] | None) -> tuple[str, str]:
    """The header names of a labels.csv's file and label columns: ``file,label``, or one of the other names
    label lists use for each (``FILE_COLUMNS``, ``LABEL_COLUMNS``; any case, spaces around ignored)."""
    names = {(n or "").strip().lower(): n for n in fieldnames or []}
    found = [[names[c] for c in cols if c in names] for cols in (FILE_COLUMNS, LABEL_COLUMNS)]
    if all(len(f) == 1 for f in found):
        return found[0][0], found[1][0]
    if fieldnames and any(Path(n or "").suffix.lower() in IMAGE_EXTS for n in fieldnames):
        raise DataError(f"{csv_path}: its first line {fieldnames} is a row, not a header; add the line file,label "
                        "at its top")
    what = "two" if any(len(f) > 1 for f in found) else "no"
    raise DataError(f"{csv_path}: expected a header with columns file,label, got {fieldnames}; {what} column(s) "
                    f"for one of them (file: one of {','.join(FILE_COLUMNS)}; label: one of {','.join(LABEL_COLUMNS)})")


def read_label_fixes(path: str | os.PathLike) -> dict[str, str]:
    """A CSV of label corrections (``file,label[,note]``) as ``{file: plate}``; each plate is checked against the
    plate format. The note says what the crop shows and how it was checked (kept for people, not read here)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label fixes file {path} not found; expected a CSV with columns file,label[,note]")
    reader = csv.DictReader(io.StringIO(labels_text(path, int(MAX_FILE_MB * 2**20)), newline=""))
    if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
        raise DataError(f"{path}: expected a header with columns file,label[,note], got {reader.fieldnames}")
    fixes: dict[str, str] = {}
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            name = inside((row["file"] or "").strip())
            if name is None:
                raise DataError(f"{where}: file name {row['file']!r} must name a file inside the source, e.g. 0001.jpg")
            if name in fixes:
                raise DataError(f"{where}: {name} is corrected twice; keep one row per file")
            try:
                fixes[name] = check_plate((row["label"] or "").strip())
            except PlateError as e:
                raise DataError(f"{where}: the corrected label of {name} is not a plate: {e}") from None
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not a readable CSV row ({e})") from None
    return fixes


def apply_label_fixes(scanned: list[tuple[str, Record]], fixes: dict[str, str], fixes_path: Path | None,
                      source_path: Path) -> list[tuple[str, Record]]:
    """``scanned`` with each fixed record's text replaced (its published label kept in ``meta["label_as_published"]``;
    a bad label mended, a file's own fault kept). A fixed record keeps the split its published label gave it,
    unless another image of its plate lies in another split: then it joins that one, so that one plate never sits
    on both sides. A fix naming a file the source does not hold is an error."""
    if not fixes:
        return scanned
    unknown = sorted(set(fixes) - {rec.name for _, rec in scanned})
    if unknown:
        raise DataError(f"{fixes_path}: corrects {len(unknown)} file(s) that {source_path} does not hold "
                        f"({some(unknown, 5)}); is it the fixes file of "
                        "another source?")
    split_of = {rec.text: split for split, rec in scanned if rec.text and rec.name not in fixes}
    out, moved = [], []
    for split, rec in scanned:
        if rec.name in fixes:
            error = "" if rec.bad_label else rec.error
            rec = Record(rec.name, fixes[rec.name], {**rec.meta, "label_as_published": rec.text}, error)
            if split_of.get(rec.text, split) != split:  # another image of this plate: one plate, one split
                moved.append(f"{rec.name} ({split} → {split_of[rec.text]})")
                split = split_of[rec.text]
        out.append((split, rec))
    log.info("%s: %d label(s) corrected by %s%s", source_path, len(fixes), fixes_path,
             f"; joined the split of another image of their plate: {', '.join(moved)}" if moved else "")
    return out


class Source:
    """Base: ``records(split)`` lists, ``load(record)`` decodes; ``fingerprint()`` changes when content does."""

    kind = "source"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15, max_file_mb: float = MAX_FILE_MB):
        self.path = Path(path)
        self.val_fraction = val_fraction
        self.resize: tuple[int, int] | None = None  # (width, height) every crop is resized to, when set
        self.rectify = False  # every crop warped level where rectify.plate_quad finds the plate (else as it is)
        self.max_bytes = int(max_file_mb * 2**20)  # a file or zip member above this is a bad sample
        self._all: list[tuple[str, Record]] | None = None  # (split: train, val or test; record)
        self.label_fixes: dict[str, str] = {}  # name → the plate it shows, where the published label is wrong
        self.label_fixes_path: Path | None = None  # the CSV they came from (named in errors)
        self.unlisted: list[str] = []  # image files a label list does not list (not read; named in the log)
        self.labels_path: Path | None = None  # the label list read (labels.csv, labels.txt; in a zip, the member), once scanned
        self._content_hash: str | None = None  # _content(), once: the splits' caches and the run's inputs ask it

    def _scan(self) -> list[tuple[str, Record]]:
        """Every record with its split (``hashed_split``)."""
        raise NotImplementedError

    def _read(self, name: str) -> bytes:
        raise NotImplementedError

    def _placed(self, rel: str, rec: Record) -> tuple[str, Record]:
        """``rec``'s split: its ``train/`` or ``test/`` folder's (dl1's layout), else by a hash of its plate text."""
        folder = _split_folder(rel.split("/"))
        key = rel if folder or not rec.text else rec.text
        return hashed_split(key, self.val_fraction, folder), rec

    def _has(self, name: str) -> bool:
        """Whether the source holds the file ``name`` (a label list's entry)."""
        raise NotImplementedError

    def _row(self, lst: LabelList, line: int, raw: str, label: str, lines: dict[str, int]) -> Record:
        """One label list row (file ``raw``, plate ``label``) as a record; a file that is missing or listed twice
        is a bad sample, a name that leads outside the list's folder an error."""
        raw = raw.strip()
        if not raw:
            raise DataError(f"{lst.where}:{line}: empty file name")
        rel = inside(raw)
        if rel is None:
            raise DataError(f"{lst.where}:{line}: file name {raw!r} leads outside {lst.folder}; {lst.name} names "
                            "files inside its own folder, e.g. train/0001.jpg")
        name = lst.base + rel
        if name in lines:
            return Record(name, "", error=f"listed twice in {lst.name} (lines {lines[name]} and {line})")
        lines[name] = line
        if not self._has(name):
            quote = f"; the name spans lines: an unbalanced quote (\") in {lst.name}?" if "\n" in rel else ""
            return Record(name, "", error=f"listed in {lst.name} (line {line}) but missing{quote}")
        return _labelled(name, label.strip())

    def _scan_list(self, lst: LabelList, text: str, images: list[str]) -> list[tuple[str, Record]]:
        """The records the label list ``lst`` (its ``text``) names; the ``images`` of the source it does not list
        are counted and named in the log (``unlisted``), not read."""
        out: list[tuple[str, Record]] = []
        bad: list[Record] = []  # a file of mostly bad rows is refused as it is read, before it can fill memory
        lines: dict[str, int] = {}  # file → the line that lists it
        for line, raw, label in label_rows(lst, text):
            rec = self._row(lst, line, raw, label, lines)
            if rec.error:
                bad.append(rec)
                if len(bad) > MAX_BAD_ROWS and 2 * len(bad) > len(out):
                    raise DataError(f"{lst.where}: {len(bad)} of its first {len(out) + 1} rows name no usable "
                                    f"sample ({bad[0].name}: {bad[0].error}); it is not a label list of this folder")
            out.append(self._placed(rec.name, rec))
        unlisted = [shown(name) for name in images if name not in lines]
        if unlisted:  # read as the list says; the others named, not dropped unseen
            log.warning("%s lists %d file(s); %d image file(s) in %s are not listed there and not read: %s",
                        lst.where, len(lines), len(unlisted), self.path, some(unlisted, 10))
        self.unlisted = unlisted
        return out

    def _content(self) -> str:
        raise NotImplementedError

    def variant(self) -> str:
        """How crops are cut and sized, beyond the files themselves ("" by default)."""
        # "rectified3": rectify.plate_quad also finds the plate in loose crops (older caches are stale)
        parts = ([f"resize={self.resize[0]}x{self.resize[1]}"] if self.resize else []) + (["rectified3"] if self.rectify else [])
        if self.label_fixes:  # labels are cached with the arrays: corrected ones are another variant
            fixes = "\n".join(f"{k}\0{v}" for k, v in sorted(self.label_fixes.items()))
            parts.append("fixes=" + hashlib.sha1(fixes.encode("utf-8")).hexdigest()[:12])
        return ",".join(parts)

    def fingerprint(self) -> str:
        """Changes when the files change, or how crops are made from them (``variant``). The files as this source
        first saw them: it hashes them once (each split's cache asks), as it lists and scans them once."""
        if self._content_hash is None:
            self._content_hash = self._content()
        v = self.variant()
        return f"{self._content_hash}:{v}" if v else self._content_hash

    def scanned(self) -> list[tuple[str, Record]]:
        if self._all is None:
            self._all = apply_label_fixes(self._scan(), self.label_fixes, self.label_fixes_path, self.path)
            warn_case_clashes([rec.name for _, rec in self._all], str(self.path))
        return self._all

    def records(self, split: str) -> list[Record]:
        if split not in SPLITS:
            raise DataError(f"split {split!r} is not one of {SPLITS}")
        return [rec for where, rec in self.scanned() if split in ("all", where)]

    def load(self, record: Record) -> np.ndarray:
        """The crop of ``record`` as BGR uint8 (resized to ``resize`` when that is set, then warped level when
        ``rectify`` is set and ``rectify.rectify`` finds the plate)."""
        return self.finish(self._load(record))

    def finish(self, img: np.ndarray) -> np.ndarray:
        """A crop as ``load`` gives it: resized to ``resize`` when that is set, then warped level when ``rectify`` is
        set and ``rectify.rectify`` finds the plate (for crops cut otherwise, as the robustness curves cut them)."""
        if self.resize:
            img = cv2.resize(img, self.resize, interpolation=cv2.INTER_AREA)
        if self.rectify:
            from .rectify import rectify as level

            warped = level(img)
            img = img if warped is None else warped
        return img

    def _load(self, record: Record) -> np.ndarray:
        return decode_image(self._read(record.name), f"{self.path}:{record.name}")

    def __getstate__(self) -> dict:  # picklable for worker processes: open handles are not carried
        state = self.__dict__.copy()
        state["_zip"] = None
        if "_listing" in state:  # a folder's file list: the scan is done; a worker only loads records
            state["_listing"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}


def _split_folder(parts: list[str]) -> str | None:
    """``train``, ``val`` or ``test`` from the folders of a path (``val``, ``valid`` and ``validation`` are ``val``: a
    published validation set is validated on whole, not trained on); None outside them."""
    for p in reversed(parts[:-1]):
        if p.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[p.lower()]
    return None


class Dl1Zip(Source):
    kind = "dl1_zip"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15, max_file_mb: float = MAX_FILE_MB):
        super().__init__(path, val_fraction, max_file_mb)
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
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
                raise DataError(f"{self.path}: its table of contents cannot be read ({e}); the zip is damaged") from None
        return self._zip

    def _files(self) -> list[tuple[str, str]]:
        """(name, stored name) of every file in the zip, in its order: names stored without the UTF-8 flag repaired
        (``repair_zip_name``), and ``\\`` read as ``/`` (Windows PowerShell 5's Compress-Archive stores
        ``test\\0001.jpg``; as unzip does); ``_names`` maps the first to the second, for ``_read``."""
        files = [(repair_zip_name(info.filename, bool(info.flag_bits & 0x800)).replace("\\", "/"), info.filename)
                 for info in self._handle().infolist() if not info.is_dir() and not info.filename.endswith("\\")]
        self._names = dict(files)
        return files

    def image_members(self) -> list[tuple[str, int]]:
        """The names of the zip's image members (``ANY_IMAGE_EXTS``), sorted as a folder's files are, each with how
        many times it is stored (more than once: which is meant?): what ``plate predict`` reads of a zip (each by
        ``read_member``)."""
        files = self._files()
        log_mac_metadata(self.path, [name for name, _ in files])
        times = Counter(name for name, _ in files if is_image_name(name))
        return sorted(times.items(), key=lambda kv: kv[0].split("/"))

    def read_member(self, name: str) -> bytes:
        """The bytes of the member ``name`` (as ``image_members`` names it), within ``max_file_mb``."""
        return self._read(name)

    def close(self) -> None:
        """Let go of the zip's file handle (it is opened again when next read)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _scan(self) -> list[tuple[str, Record]]:
        files = self._files()
        log_mac_metadata(self.path, [name for name, _ in files])
        members = [(name, stored) for name, stored in files if is_image_name(name)]
        lists = [name for name, _ in files if name.rsplit("/", 1)[-1] in LABEL_LISTS]
        times = Counter(name for name, _ in members)
        if len(lists) > 1:
            raise DataError(f"{self.path} holds {len(lists)} label lists ({', '.join(lists[:5])}); a zip is read with "
                            "one: keep the one that labels its crops")
        if lists:  # a zipped folder of crops and its labels.csv or labels.txt, read in place as the folder would be
            self.labels_path = Path(lists[0])
            base = lists[0][:-len(self.labels_path.name)]
            lst = LabelList(f"{self.path}:{lists[0]}", self.labels_path.name, f"{self.path}:{base or '/'}", base)
            scanned = self._scan_list(lst, decode_labels(self._read(lists[0], LIST_BYTES, list_too_large), lst.where),
                                      [n for n, _ in members])
            return [(where, Record(rec.name, "", rec.meta, error=self._stored_twice(times[rec.name]))
                     if not rec.error and times[rec.name] > 1 else rec) for where, rec in scanned]
        if mostly_ccpd([name for name, _ in members]):
            raise DataError(f"{self.path} holds CCPD2019 photos (named by their annotation), which are cut into crops "
                            "from a folder: unzip it and name the folder it makes (`plate predict` reads the photos "
                            "in a zip as they are)")
        out = []
        for name, _ in members:
            if times[name] > 1:  # zipfile reads the last of them whichever is asked for
                rec = Record(name, "", error=self._stored_twice(times[name]))
            elif why := not_readable(name):
                rec = Record(name, "", error=why)
            else:
                rec = _labelled(name, label_from_filename(name))
            out.append(self._placed(name, rec))  # outside train/ and test/ (a zipped folder of crops): by plate text
        return out

    @staticmethod
    def _stored_twice(times: int) -> str:
        return f"stored {times} times in the zip (members of one name: which is meant?)"

    def _has(self, name: str) -> bool:
        return name in self._names

    def _read(self, name: str, max_bytes: int | None = None, too_big=too_large) -> bytes:
        """The member's bytes; its declared size is checked first (against ``max_bytes``, by default the images'
        cap; ``too_big`` makes the error), then at most that many are inflated (a member that would inflate further
        fails its CRC check)."""
        if not self._names:
            self._files()
        try:
            info = self._handle().getinfo(self._names.get(name, name))
        except KeyError:
            raise DataError(f"{self.path}:{name}: not in the zip") from None
        cap = self.max_bytes if max_bytes is None else max_bytes
        if info.file_size > cap:
            raise too_big(f"{self.path}:{name}", info.file_size, cap, declared=True)
        try:  # read(n), not read(): zipfile would inflate up to 2 GiB in one step before cutting to the declared size
            with self._handle().open(info) as f:
                data = f.read(cap + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, RuntimeError,
                NotImplementedError, ValueError) as e:  # a damaged, encrypted or foreign-compressed member, a CRC mismatch
            raise DataError(f"{self.path}:{name}: cannot be read from the zip ({e}); the zip may be damaged") from None
        if len(data) > cap:
            raise too_big(f"{self.path}:{name}", len(data), cap)
        return data

    def _content(self) -> str:
        h = hashlib.sha1()
        for info in self._handle().infolist():
            h.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


class CropFolder(Source):
    """Crops in ``train/`` and ``test/`` sub-folders keep those splits; crops outside them are split by a hash
    of their plate text (``hashed_split``), so two images of one plate never sit on both sides."""

    kind = "crop_folder"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15, max_file_mb: float = MAX_FILE_MB,
                 listing: list[str] | None = None):
        super().__init__(path, val_fraction, max_file_mb)
        self._listing = listing  # files_under(path), listed once (open_source passes the one it looked at)

    def files(self) -> list[str]:
        """Every file under the folder (``files.files_under``), listed once: the folder-kind check, the scan, the
        labels.csv check and the fingerprint read the same listing (a CCPD folder holds hundreds of thousands of
        photos; each listing took about a second a 100,000)."""
        if self._listing is None:
            self._listing = files_under(self.path)
        return self._listing

    def image_files(self) -> list[str]:
        return image_files(self.path, self.files())

    def _scan(self) -> list[tuple[str, Record]]:
        log_mac_metadata(self.path, self.files())
        self.labels_path = label_list(self.path)
        if self.labels_path is not None:
            lst = LabelList(str(self.labels_path), self.labels_path.name, str(self.path))
            return self._scan_list(lst, labels_text(self.labels_path, LIST_BYTES), self.image_files())
        deeper = [rel for rel in self.files() if rel.rsplit("/", 1)[-1] in LABEL_LISTS]
        if deeper:  # train/labels.csv and test/labels.csv: not read, and not to be passed over unsaid
            raise DataError(f"{self.path} has no label list at its top but {len(deeper)} below it ({some(deeper, 5)}); "
                            "a folder of crops is labelled by one list at its top, its entries relative to it: merge "
                            "them into one labels.csv there (file,label rows such as train/0001.jpg,皖A12345), or "
                            "name the folder that holds the list")
        out = []
        for rel in self.image_files():
            why = not_readable(rel)
            out.append(self._placed(shown(rel), Record(shown(rel), "", error=why) if why else
                                    _labelled(rel, label_from_filename(rel))))
        return out

    def _has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def _read(self, name: str) -> bytes:
        rel = inside(name)
        if rel is None:
            raise DataError(f"{self.path}: {name!r} leads outside the folder; refused")
        p = self.path / rel
        if not p.is_file():
            raise DataError(f"{p}: listed but missing")
        return read_file(p, self.max_bytes)

    def _content(self) -> str:
        h = hashlib.sha1()
        for rel in self.files():
            try:
                st = os.stat(os.path.join(self.path, rel))
            except OSError:  # a link to nothing: the link itself
                st = os.lstat(os.path.join(self.path, rel))
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
                     .encode("utf-8", "surrogateescape"))  # a name the file system could not decode
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


def cut_ccpd(photo: np.ndarray, name: str, crop: str = "corners", scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The plate of the CCPD photo ``name``: warped upright from its four corners to 220×70 (``corners``), or
    cut by its axis-aligned bounding box as CCPD2019-dl1 made its crops (``bbox``: tilted plates stay tilted,
    and the box may clip a character's edge). ``scale``: (x, y) from the annotation's pixels to ``photo``'s,
    for a photo decoded reduced."""
    if crop == "corners":
        corners = parse_ccpd_name(name)[1]
        corners = corners if scale == (1.0, 1.0) else corners * np.float32(scale)
        h, w = photo.shape[:2]
        slack = CORNER_SLACK * np.array([w, h], np.float32)
        if (corners < -slack).any() or (corners > np.array([w - 1, h - 1], np.float32) + slack).any():
            raise DataError(f"{name}: its annotated corners {corners.round().astype(int).tolist()} lie outside the "
                            f"{w}×{h} photo; a CCPD2019 photo's annotation lies inside it (is this a crop named like "
                            "a CCPD photo? rename it <plate>.jpg)")
        return rectify(photo, corners)
    if crop != "bbox":
        raise DataError(f"CCPD crop mode {crop!r} (data.ccpd_crop) is not one of {CROP_MODES}")
    x1, y1, x2, y2 = ccpd_bbox(name)
    if scale != (1.0, 1.0):
        x1, x2, y1, y2 = round(x1 * scale[0]), round(x2 * scale[0]), round(y1 * scale[1]), round(y2 * scale[1])
    h, w = photo.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise DataError(f"{name}: bounding box {ccpd_bbox(name)} leaves no plate inside the {w}×{h} photo")
    return np.ascontiguousarray(photo[y1:y2, x1:x2])


NO_PLATE_SUBSET = "ccpd_np"  # CCPD2019's photos of cars without a plate (1005.jpg …): no annotation, by design


def official_key(path: str) -> str:
    """A CCPD2019 photo as its split lists are matched to the folder: its sub-folder and file name."""
    return "/".join(path.replace("\\", "/").rsplit("/", 2)[-2:])


def no_plate_photo(rel: str) -> bool:
    """Whether the file ``rel`` (a relative POSIX path) is one of CCPD2019's photos without a plate: in a
    ``ccpd_np/`` folder and not named by an annotation."""
    parts = rel.rsplit("/", 2)
    return len(parts) > 1 and parts[-2] == NO_PLATE_SUBSET and not CCPD_NAME.match(os.path.splitext(parts[-1])[0])


class CcpdPhotos(CropFolder):
    """CCPD2019 photos (``ccpd_base/``, ``ccpd_green/`` …), or any folder of them, the whole CCPD2019 folder too.

    Split by file-name hash: ``val_fraction`` of the photos go to ``test``; ``val`` is ``val_fraction`` of the
    rest (with 0.15: test 15 %, val 12.75 %, train 72.25 %); photos under ``train/`` and ``test/`` folders (CCPD2020's
    ``ccpd_green/{train,val,test}``) keep those splits, as in a crops folder. ``meta`` keeps the sub-dataset, tilt,
    brightness and blur for the analysis. ``crop``: ``corners`` or ``bbox`` (``cut_ccpd``). The photos of
    ``ccpd_np/`` (``NO_PLATE_SUBSET``), which show no plate and carry no annotation, are no plate samples: they
    are left out, counted and named in the log (``no_plate``), not bad samples that stop a run."""

    kind = "ccpd_photos"

    def __init__(self, path: str | os.PathLike, val_fraction: float = 0.15, crop: str = "corners",
                 max_file_mb: float = MAX_FILE_MB, listing: list[str] | None = None, split: str = "hash"):
        super().__init__(path, val_fraction, max_file_mb, listing)
        if crop not in CROP_MODES:
            raise DataError(f"CCPD crop mode {crop!r} (data.ccpd_crop) is not one of {CROP_MODES}")
        if split not in SPLIT_MODES:
            raise DataError(f"CCPD split {split!r} (data.ccpd_split) is not one of {SPLIT_MODES}")
        self.crop = crop
        self.split = split
        self.no_plate: list[str] = []  # photos of ccpd_np/ (no plate, no annotation): left out, named in the log

    def official_splits(self) -> dict[str, str]:
        """Each photo CCPD2019's ``splits/{train,val,test}.txt`` list (``ccpd_base/….jpg``), by its sub-folder and
        name (``official_key``: a list written with another prefix, ``CCPD2019/ccpd_base/…``, or ``\\``, reads
        alike) → its split, the first list naming it; a ``DataError`` naming the lists that are not there."""
        folder = self.path / "splits"
        missing = [f"splits/{s}.txt" for s in SPLITS[:3] if not (folder / f"{s}.txt").is_file()]
        if missing:
            raise DataError(f"{self.path}: data.ccpd_split official reads CCPD2019's own splits/train.txt, val.txt and "
                            f"test.txt; {', '.join(missing)} not found there. Name the CCPD2019 folder itself, or set "
                            "data.ccpd_split: hash (a hash of the file name)")
        where: dict[str, str] = {}
        for split in SPLITS[:3]:
            for line in labels_text(folder / f"{split}.txt", LIST_BYTES).splitlines():
                if line.strip():
                    where.setdefault(official_key(line.strip()), split)
        return where

    def _scan(self) -> list[tuple[str, Record]]:
        log_mac_metadata(self.path, self.files())
        out = []
        no_plate = []
        official = self.official_splits() if self.split == "official" else None
        unlisted = []
        present: set[str] = set()  # the folder's photos as the split lists name them (official_key)
        for rel in self.image_files():
            parts = rel.split("/")
            named = [p for p in parts[:-1] if p.lower() not in SPLIT_FOLDERS]  # ccpd_green/test/…: ccpd_green
            subset = named[-1] if named else self.path.name
            if no_plate_photo(rel):
                no_plate.append(shown(rel))
                continue
            if official is not None:
                present.add(key := official_key(rel))
                if key not in official:
                    unlisted.append(shown(rel))
                    continue
            try:
                if why := not_readable(rel):
                    raise PlateError(why)
                text, _, meta = parse_ccpd_name(rel)
                rec = Record(rel, text, {"subset": subset, **meta})
            except PlateError as e:
                rec = Record(shown(rel), "", {"subset": shown(subset)}, error=str(e))
            # by file name, as the shipped model was split; CCPD2020's train/ val/ test/ folders kept as a crops folder's
            out.append((official[key] if official is not None
                        else hashed_split(rec.name, self.val_fraction, _split_folder(parts)), rec))
        if no_plate:
            log.info("%s: %d photo(s) in %s/ are CCPD's photos without a plate (no annotation), not plate samples; "
                     "left out: %s", self.path, len(no_plate), NO_PLATE_SUBSET, some(no_plate, 5))
        self.no_plate = no_plate
        if official is not None:  # what the lists and the folder hold, counted: neither drops a photo unseen
            counts = ", ".join(f"{split} {sum(w == split for w, _ in out)}" for split in SPLITS[:3])
            listed_only = f"; {len(unlisted)} photo(s) listed in none, not read: {some(unlisted, 5)}" if unlisted else ""
            absent = len(official.keys() - present)
            log.info("%s: split by CCPD2019's splits/*.txt (data.ccpd_split official): %s; %d listed photo(s) not in "
                     "the folder%s", self.path, counts, absent, listed_only)
            self.unlisted = unlisted
        return out

    def _load(self, record: Record) -> np.ndarray:
        # the corners are in the photo's own pixels: scaled along when a huge photo is decoded reduced
        photo, scale = decode_photo(self._read(record.name), f"{self.path}:{record.name}")
        return cut_ccpd(photo, record.name, self.crop, scale)

    def variant(self) -> str:
        split = "split=official" if self.split == "official" else ""
        return ",".join(v for v in (f"crop={self.crop}", split, super().variant()) if v)

    def __repr__(self) -> str:
        return f"CcpdPhotos({str(self.path)!r}, crop={self.crop!r}, split={self.split!r})"


def load_image_file(path: str | os.PathLike, ccpd_crop: str = "corners", max_file_mb: float = MAX_FILE_MB) -> np.ndarray:
    """An image file as a plate crop: CCPD photos (annotated file names) are cut out by ``cut_ccpd``."""
    return image_from_bytes(image_file_bytes(path, max_file_mb), Path(path).name, str(Path(path)), ccpd_crop)


def image_file_bytes(path: str | os.PathLike, max_file_mb: float = MAX_FILE_MB) -> bytes:
    """An image file's bytes, within ``max_file_mb`` (``DataError`` naming it where it is missing or larger)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image {p} not found")
    return read_file(p, int(max_file_mb * 2**20))


def image_from_bytes(buf: bytes, name: str, where: str, ccpd_crop: str = "corners") -> np.ndarray:
    """An image file's bytes (its file name ``name``; ``where`` names it in errors) as a plate crop, as
    ``load_image_file`` reads a file."""
    stem = os.path.splitext(name.rsplit("/", 1)[-1])[0]
    if not CCPD_NAME.match(stem):
        return decode_image(buf, where)
    photo, scale = decode_photo(buf, where)
    return cut_ccpd(photo, name.rsplit("/", 1)[-1], ccpd_crop, scale)


def image_files(folder: Path, listing: list[str] | None = None) -> list[str]:
    """The image files under ``folder`` (those read, ``IMAGE_EXTS``, and those named bad samples,
    ``OTHER_IMAGE_EXTS``), as sorted relative POSIX paths; ``listing``: ``files_under(folder)`` where the caller
    has it."""
    return [rel for rel in (files_under(folder) if listing is None else listing) if is_image_name(rel)]


def looks_like_ccpd(folder: Path, listing: list[str] | None = None) -> bool:
    """Whether ``folder`` holds CCPD2019 photos: no label list (``labels.csv``, ``labels.txt``: it makes a crops folder), and
    most of its images named by a CCPD annotation (the rest are then bad samples, named), whatever order the
    file system lists them in; the photos of ``ccpd_np/`` (CCPD's own, with no annotation) not counted.
    ``listing``: ``files_under(folder)`` where the caller has it."""
    if label_list(folder) is not None:
        return False
    return mostly_ccpd(image_files(folder, listing))


def mostly_ccpd(images: Sequence[str]) -> bool:
    """Whether most of the image paths ``images`` are named by a CCPD annotation, the photos of ``ccpd_np/``
    (CCPD's own, with no annotation) not counted."""
    stems = [os.path.splitext(rel.rsplit("/", 1)[-1])[0] for rel in images if not no_plate_photo(rel)]
    return sum(bool(CCPD_NAME.match(stem)) for stem in stems) * 2 > len(stems)


def open_source(path: str | os.PathLike, val_fraction: float = 0.15, ccpd_crop: str = "corners",
                max_file_mb: float = MAX_FILE_MB, resize: Sequence[int] | None = None, rectify: bool = False,
                label_fixes: str | os.PathLike | None = None, ccpd_split: str = "hash") -> Source:
    """A dl1 zip, a CCPD2019 photo folder or a crops folder, by what ``path`` is; ``ccpd_crop`` says how a
    CCPD2019 photo becomes a crop (``cut_ccpd``) and ``ccpd_split`` how CCPD2019 photos are split (``CcpdPhotos``);
    a file above ``max_file_mb`` is a bad sample; ``resize`` (width, height) is the size every crop is brought to;
    ``rectify`` warps each crop level (``rectify.py``); ``label_fixes`` is a CSV of corrected labels
    (``read_label_fixes``)."""
    source = _open(path, val_fraction, ccpd_crop, max_file_mb, ccpd_split)
    source.rectify = rectify
    if label_fixes is not None:
        source.label_fixes, source.label_fixes_path = read_label_fixes(label_fixes), Path(label_fixes)
    if resize is not None:
        if len(resize) != 2 or min(resize) < MIN_SIDE:
            raise DataError(f"crop size {list(resize)} (data.resize_crops) must be [width, height], each at least {MIN_SIDE}")
        source.resize = (int(resize[0]), int(resize[1]))
    return source


def _open(path: str | os.PathLike, val_fraction: float, ccpd_crop: str, max_file_mb: float,
          ccpd_split: str = "hash") -> Source:
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if str(path) == "-":
            hint = "; standard input (-) is not read here: name the folder that holds the crops"
        elif any(c in str(path) for c in "*?["):
            hint = ("; a glob pattern is not a data source: name the folder that holds the crops (its images are "
                    "read recursively)")
        raise DataError(f"data path {p} does not exist; expected a CCPD2019-dl1 zip, a crops folder "
                        f"or a CCPD2019 folder (or data.source: synthetic){hint}")
    if p.is_file():
        if p.suffix.lower() in IMAGE_EXTS:
            raise DataError(f"{p} is one image, not a data source; expected a CCPD2019-dl1 zip or a folder (crops "
                            "named <plate>.jpg or listed in labels.csv or labels.txt, or CCPD2019 photos). `plate predict` reads "
                            "single images")
        if p.suffix.lower() != ".zip":
            archive = p.name.lower().endswith((".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar.zst",
                                               ".tzst", ".7z", ".rar"))
            hint = ("; an archive of that kind cannot be read in place (only a zip can): unpack it (tar xf for a .tar.*, "
                    "as CCPD2019 comes, CCPD2019.tar.xz; 7z x or unrar x for the others) and name the folder it makes"
                    ) if archive else ""
            raise DataError(f"{p} is a file but not a .zip; expected a CCPD2019-dl1 zip or a folder{hint}")
        return Dl1Zip(p, val_fraction, max_file_mb)
    if p.suffix.lower() == ".zip":
        raise DataError(f"{p} is a directory, expected a zip file (a CCPD2019-dl1 zip); "
                        "name the zip itself, or rename the folder (no .zip) if it holds crops")
    listing = files_under(p)  # once, for the kind check and the source's own scan and fingerprint
    if looks_like_ccpd(p, listing):
        return CcpdPhotos(p, val_fraction, ccpd_crop, max_file_mb, listing, ccpd_split)
    return CropFolder(p, val_fraction, max_file_mb, listing)
