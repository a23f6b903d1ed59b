"""Plates: the alphabet, label parsing and validation, encoding for the two model heads.

A Chinese plate is a province character, a city letter, then 5 letters/digits (blue, 7 characters in all)
or 6 (green new-energy plates, 8 characters). The model reads the province with a classifier and the rest
("A12345") with CTC over ``SYMBOLS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# CCPD's province index table, in CCPD's order (its last three entries, 警 学 O, are not provinces).
CCPD_PROVINCES = list("皖沪津渝冀晋蒙辽吉黑苏浙京闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新") + ["警", "学", "O"]
# CCPD's table for the city letter and for the other positions; "O" marks "no character".
CCPD_ALPHABETS = list("ABCDEFGHJKLMNPQRSTUVWXYZ") + ["O"]
CCPD_ADS = list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") + ["O"]

PROVINCES: list[str] = CCPD_PROVINCES[:31]
"""The 31 provincial-level abbreviations, in CCPD's order (皖 first)."""
SYMBOLS: list[str] = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [str(d) for d in range(10)]
"""The seed's 36 CTC symbols: A-Z then 0-9. CTC class 0 is the blank, so symbol i is class i + 1."""
BLANK = 0

PLATE_LENGTHS = (7, 8)
NOT_ON_PLATES = {"I": "1", "O": "0"}
"""Letters no Chinese plate uses (GA 36: they would be read as 1 and 0); a label holding one is a typo for the digit."""


class PlateError(ValueError):
    """A plate label that does not match the plate format."""


LABEL_TAIL = "[A-Z0-9]{5,6}"
"""After the province and the city letter, what a label may hold: 5 or 6 letters or digits (``check_plate``)."""
_ON_PLATES = "A-HJ-NP-Z0-9"  # letters and digits a plate may hold: no I or O (NOT_ON_PLATES)
ISSUED_TAIL = f"(?:[{_ON_PLATES}]{{5}}|[A-HJK][{_ON_PLATES}][0-9]{{4}}|[0-9]{{5}}[DF])"
"""What decoding accepts there (``is_issued_format``): 5 letters or digits, no I or O; or a new-energy plate's 6 (GA
36-2018): for small cars a letter A-K but I (D, A, B, C, E electric; F, G, H, J, K the others), a letter or digit and
four digits; for large vehicles five digits then D (electric) or F."""


# characters of plates plate_lib does not read (civil single-row plates only), named in a label's error
SPECIAL_SUFFIXES = {"学": "a driving-school", "挂": "a trailer", "警": "a police", "港": "a Hong Kong border",
                    "澳": "a Macau border", "使": "an embassy", "领": "a consulate", "试": "a test-vehicle",
                    "超": "an oversize"}


@lru_cache(maxsize=16)
def _plate_regex(provinces: tuple[str, ...], tail: str) -> re.Pattern[str]:
    return re.compile(f"[{''.join(provinces)}][A-Z]{tail}")  # used with fullmatch: no newline after the plate


def check_plate(text: str, provinces: Sequence[str] = PROVINCES) -> str:
    """Return ``text`` if it is a valid plate, else raise ``PlateError`` saying what is wrong."""
    not_on_plates = sorted(set(text[1:]) & NOT_ON_PLATES.keys())
    if _plate_regex(tuple(provinces), LABEL_TAIL).fullmatch(text) and not not_on_plates:
        return text
    if len(text) not in PLATE_LENGTHS:
        why = f"has {len(text)} characters, expected 7 (blue) or 8 (green new-energy)"
    elif text[0] not in provinces:
        why = f"starts with {text[0]!r}, expected a province character such as 皖 or 苏"
        if text[0] in SPECIAL_SUFFIXES or text.startswith("WJ"):
            why += (f" ({'an armed-police' if text[0] == 'W' else SPECIAL_SUFFIXES[text[0]]} plate, which plate_lib does "
                    "not read: civil single-row plates only, models/README.md, Limits)")
    elif not ("A" <= text[1] <= "Z"):
        why = f"has {text[1]!r} as city letter, expected A-Z"
    elif not_on_plates:
        typo = text[:2] + "".join(NOT_ON_PLATES.get(c, c) for c in text[2:])
        why = (f"holds {' and '.join(not_on_plates)}, which Chinese plates never use (too like "
               "1 and 0)" + (f"; the plate is likely {typo!r}" if typo != text and typo[1] not in NOT_ON_PLATES else ""))
    else:
        bad = sorted({c for c in text[2:] if c not in SYMBOLS})
        why = f"has characters {bad} after the city letter, expected A-Z or 0-9"
        if set(bad) <= set(SPECIAL_SUFFIXES):
            why += (f" ({''.join(bad)}: {' or '.join(SPECIAL_SUFFIXES[c] for c in bad)} plate, which plate_lib does "
                    "not read: civil single-row plates only, models/README.md, Limits)")
    raise PlateError(f"plate {text!r} {why}")


def is_issued_format(text: str, provinces: Sequence[str] = PROVINCES) -> bool:
    """Whether ``text`` is a plate in a format China issues: a province, a city letter and 5 letters or digits,
    never I or O; or, in 8 characters, a new-energy plate (``ISSUED_TAIL``: ``皖AD1A234`` is not one,
    ``皖AD12345``, ``皖AKA1234`` and ``皖A12345D`` are). What decoding accepts from the network (an 8-character
    reading in no such format is a 7-character plate read with a character too many); labels are checked by
    the looser ``check_plate``, so a source is never refused for a plate format this list lacks."""
    return bool(_plate_regex(tuple(provinces), ISSUED_TAIL).fullmatch(text)) and text[1] not in NOT_ON_PLATES


def is_large_new_energy(text: str) -> bool:
    """Whether ``text`` is a large vehicle's new-energy plate (``皖A12345D``: five digits, then D or F), yellow under
    the province and city letter and green after, where a small car's (``皖AD12345``) is green."""
    return len(text) == 8 and text[2:7].isdigit()


def label_from_filename(name: str) -> str:
    """The plate in a crop's file name (any folders before it): dl1's ``<id>-<plate>.jpg`` or ``<plate>.jpg``, the
    part after the last ``-`` of the stem, so ids may hold dashes themselves. Where that is no plate: the one part
    that is a plate, split at ``-``, ``_``, spaces and brackets, of the part after the last ``-``, else of the whole
    name (``<id>_<plate>.jpg``, copies of one plate ``<plate>_2.jpg`` and ``<plate> (2).jpg``, a word after it that
    starts with a province character as 新能源 or 黑 do); else the one part that starts with a province (a mistyped
    plate is returned as it is, for its check to say what is wrong); with two such parts, or none, the part after
    the last ``-``, whose check says what is wrong with it.
    """
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    last = stem.rsplit("-", 1)[-1]
    if is_plate(last):
        return last
    for scope in (last, stem):  # the part after the last dash first, then the whole name
        meant = [part for part in re.split(r"[-_ ()（）]+", scope) if part[:1] in PROVINCES]  # parts that try a plate
        plates = [part for part in meant if is_plate(part)]
        if len(plates) == 1:  # one plate among words that start as one would: 皖AD12345_新能源, 苏E12345_黑
            return plates[0]
        if meant:
            return meant[0] if len(meant) == 1 else last
    return last


def is_plate(text: str) -> bool:
    """Whether ``check_plate`` accepts ``text``."""
    try:
        check_plate(text)
    except PlateError:
        return False
    return True


def repair_zip_name(name: str, utf8_flag: bool) -> str:
    """Undo zipfile's cp437 decoding of a name stored without the zip's UTF-8 flag.

    ``zipfile`` decodes flag-less names as cp437; the dl1 zip stored UTF-8 bytes that way, and zip tools on Chinese
    Windows store GBK (read as GB18030, its superset). Names that carry the flag are kept as they are; so are
    those that are neither UTF-8 nor GBK holding a province character once re-encoded (a genuine cp437
    name: ``café_1.jpg`` would read as GBK too, but as no plate). Bytes that read as both UTF-8 and GBK are
    UTF-8 unless only the GBK reading names a plate (GBK's 鲁 and 豫 are valid UTF-8 for ³ and ԥ).
    """
    if utf8_flag:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    try:
        utf8 = raw.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    try:
        gbk = raw.decode("gb18030")
    except UnicodeDecodeError:
        gbk = None
    gbk_plate = gbk is not None and is_plate(label_from_filename(gbk))
    if utf8 is not None and (not gbk_plate or is_plate(label_from_filename(utf8))):
        return utf8  # GBK whose bytes happen to be UTF-8 too (鲁 C2 B3 reads ³, 豫 D4 A5 ԥ): the plate decides
    if gbk is not None and (gbk_plate or any(c in PROVINCES for c in gbk)):
        return gbk  # a plate's province: not a cp437 name's accident
    return name


def gbk_plate_name(raw: bytes) -> str | None:
    """``raw`` (a file name's bytes) read as GBK (GB18030) where that reading names a plate
    (``label_from_filename``), else None."""
    try:
        gbk = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return gbk if is_plate(label_from_filename(gbk)) else None


# --- encoding for the two heads -------------------------------------------------------------------------

PROVINCE_INDEX = {p: i for i, p in enumerate(PROVINCES)}
SYMBOL_CLASS = {s: i + 1 for i, s in enumerate(SYMBOLS)}  # CTC classes, 0 is blank


def encode(text: str) -> tuple[int, list[int]]:
    """``"皖A88888"`` → (province index, CTC classes of ``"A88888"``)."""
    return PROVINCE_INDEX[text[0]], [SYMBOL_CLASS[c] for c in text[1:]]


def ctc_greedy_decode(classes: Sequence[int]) -> str:
    """Best-path CTC decoding: merge repeats, then drop blanks. ``[8, 8, 0, 8]`` reads two 8s."""
    out, prev = [], BLANK
    for c in classes:
        c = int(c)
        if c != prev and c != BLANK:
            out.append(SYMBOLS[c - 1])
        prev = c
    return "".join(out)


NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` on Python floats (numpy's ufunc costs a microsecond a call on scalars)."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def ctc_beam_search(log_probs: np.ndarray, beam: int = 16, prune: float = -12.0, top: int = 8) -> list[tuple[str, float]]:
    """The ``beam`` most probable label sequences under CTC, best first, as (text, log probability summed over
    all alignments): prefix beam search over ``log_probs`` [T, classes] (log-softmax, class 0 the blank).
    At each step only the ``top`` most probable classes above ``prune`` are tried: on a flat distribution (an
    untrained model) trying every class cost 30 ms a plate, and a class outside the top 8 of a step scarcely
    changes the best readings."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix -> log p (blank, not)
    for row in np.asarray(log_probs, dtype=np.float64):
        lp = row.tolist()
        order = np.argsort(-row)[:top + 1].tolist()
        tried = [c for c in order if c != BLANK and lp[c] > prune][:top]
        blank = lp[BLANK]
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            here = grown.setdefault(prefix, [NEG_INF, NEG_INF])
            here[0] = _logaddexp(here[0], total + blank)
            last = prefix[-1] if prefix else None
            for c in tried:
                longer = grown.setdefault(prefix + (c,), [NEG_INF, NEG_INF])
                if c == last:  # a repeat extends only across a blank; without one it merges
                    longer[1] = _logaddexp(longer[1], pb + lp[c])
                    here[1] = _logaddexp(here[1], pnb + lp[c])
                else:
                    longer[1] = _logaddexp(longer[1], total + lp[c])
        scored = sorted(((_logaddexp(b, nb), k, b, nb) for k, (b, nb) in grown.items()), key=lambda t: -t[0])[:beam]
        beams = {k: (b, nb) for _, k, b, nb in scored}
    return [("".join(SYMBOLS[c - 1] for c in k), _logaddexp(*v)) for k, v in beams.items()]


def decode(province: int, classes: Sequence[int]) -> str:
    return PROVINCES[int(province)] + ctc_greedy_decode(classes)


# --- CCPD2019 annotations -------------------------------------------------------------------------------


def plate_from_ccpd_indices(indices: Sequence[int]) -> str:
    """Decode CCPD's ``p_a_c_c_c_c_c[_c]`` plate field (already split into ints) into text.

    Raises ``PlateError`` naming the bad index.
    """
    if len(indices) not in PLATE_LENGTHS:
        raise PlateError(f"CCPD plate field has {len(indices)} indices, expected 7 or 8")
    tables = [CCPD_PROVINCES, CCPD_ALPHABETS] + [CCPD_ADS] * (len(indices) - 2)
    chars = []
    for pos, (idx, table) in enumerate(zip(indices, tables, strict=True)):
        if not 0 <= idx < len(table):
            raise PlateError(f"CCPD plate index {idx} at position {pos} is outside 0..{len(table) - 1}")
        if table[idx] == "O":  # CCPD's tables end with "O": no character (no plate has the letter O)
            raise PlateError(f"CCPD plate index {idx} at position {pos} is CCPD's 'O', no character: the annotation "
                             "names no plate character there")
        chars.append(table[idx])
    return check_plate("".join(chars))
