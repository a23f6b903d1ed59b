"""Analysis: the tables behind the report notebooks, from a dataset's records or from ``evaluate``'s rows.

Rows are ``inference.evaluate``'s per-plate DataFrame (``name, true, pred, confidence, correct, char_errors,
edit_distance`` and, for CCPD photos, ``subset`` …). Symbol confusions align prediction and truth with a
Levenshtein alignment (after the province), so a dropped character counts once, not as a shift of every
character after it; ``char_errors`` stays the seed's position-wise count.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rapidfuzz.distance import Levenshtein

from . import metrics, peers
from .augment import augment_batch
from .config import AugmentConfig, Config, PreprocessConfig
from .dataset import load_cfg_split, open_cfg_source, require_plates, resolve_source, to_tensor
from .inference import evaluate, load_reader
from .predict import plate_kind
from .preprocess import letterbox
from .sources import Record, Source, load_records
from .synth import generate_zip, render_plate

# The seed notebook's test results (9,999 CCPD2019-dl1 crops): docs/seed-summary.md.
SEED_RESULTS = {"n": 9999, "word_acc": 0.91, "char_acc": 0.98, "province_acc_non_wan": 0.89}
SEED_ERROR_COUNTS = {0: 9126, 1: 619, 2: 155, 3: 53, 4: 31, 5: 11, 6: 4}
MISSING = "∅"  # the empty side of an inserted or deleted character


# --- the data ----------------------------------------------------------------------------------------------


def open_dataset(cfg: Config) -> Source:
    """The configured source (``resolve_source``); a missing synthetic zip is generated without a progress bar."""
    if cfg.data.source == "synthetic" and not Path(cfg.data.synthetic_path).is_file():
        generate_zip(cfg.data.synthetic_path, cfg.synth, progress=False)
    return resolve_source(cfg)


def split_counts(source: Source, splits: tuple[str, ...] = ("train", "val", "test")) -> pd.DataFrame:
    """Plates per split, with the bad labels, the 皖 share and the green (8-character) share."""
    out = {}
    for split in splits:
        recs = source.records(split)
        texts = [r.text for r in recs if not r.error]
        out[split] = {"plates": len(texts), "bad labels": len(recs) - len(texts),
                      "皖 share": float(np.mean([t[0] == metrics.HOME_PROVINCE for t in texts])) if texts else np.nan,
                      "green share": float(np.mean([len(t) == 8 for t in texts])) if texts else np.nan}
    return pd.DataFrame.from_dict(out, orient="index")


def not_read(source: Source) -> dict[str, int]:
    """Files in the source that are in no split, each counted (the log names them): images its label list does
    not list (or, with ``data.ccpd_split: official``, that CCPD2019's split lists do not), and CCPD2019's
    ``ccpd_np/`` photos of cars without a plate."""
    source.scanned()
    listing = "CCPD2019's split lists" if getattr(source, "split", "hash") == "official" else \
        (f"the label list ({source.labels_path.name})" if source.labels_path is not None else "a label list (none)")
    return {f"images not in {listing}": len(source.unlisted),
            "ccpd_np/ photos without a plate": len(getattr(source, "no_plate", []))}


def province_counts(texts: list[str]) -> pd.Series:
    """Plates per province (first character), most frequent first."""
    counts = Counter(t[0] for t in texts if t)
    return pd.Series(dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), name="plates", dtype=int)


def sample_records(source: Source, split: str, n: int, seed: int = 0, skip_bad: bool = False) -> list[Record]:
    """Up to ``n`` good records of ``split``, drawn without replacement, in their listed order. With ``skip_bad``
    (``data.skip_bad``), those whose file does not load are left out and named in the log (``load_records``), as
    the split's decoding leaves them out; else they are left to fail where they are read."""
    recs = [r for r in source.records(split) if not r.error]
    if len(recs) > n:
        keep = np.sort(np.random.default_rng(seed).choice(len(recs), n, replace=False))
        recs = [recs[i] for i in keep]
    return load_records(source, recs, skip_bad=True)[0] if skip_bad else recs


def crop_sizes(source: Source, records: list[Record]) -> pd.DataFrame:
    """Raw (before letterbox) width and height of each record's crop."""
    shapes = [source.load(r).shape[:2] for r in records]
    return pd.DataFrame({"name": [r.name for r in records], "width": [s[1] for s in shapes],
                         "height": [s[0] for s in shapes]})


def load_crops(source: Source, names: list[str]) -> list[np.ndarray]:
    """Raw BGR crops by record name (as in ``evaluate``'s ``name`` column)."""
    return [source.load(Record(name, "")) for name in names]


def letterboxed(crops: list[np.ndarray], pre: PreprocessConfig) -> np.ndarray:
    """Raw crops → the model's input, uint8 [N, H, W, C] (``preprocess.letterbox``)."""
    return np.stack([letterbox(c, pre.height, pre.width, pre.grayscale) for c in crops])


def augment_draws(images: np.ndarray, cfg: AugmentConfig, draws: int = 4, seed: int = 0) -> np.ndarray:
    """uint8 [N, H, W, C] → uint8 [N, 1 + draws, H, W, C]: each plate, then ``draws`` augmentations of it."""
    g = torch.Generator().manual_seed(seed)
    x = to_tensor(images)
    outs = [x] + [augment_batch(x.clone(), cfg.model_copy(update={"enabled": True}), g) for _ in range(draws)]
    stacked = torch.stack(outs, 1).mul(255).round().clamp(0, 255).to(torch.uint8)  # [N, D, C, H, W]
    return stacked.permute(0, 1, 3, 4, 2).numpy()


def ccpd_eval_sets(cfg: Config) -> list[str]:
    """The entries of ``data.eval_sets`` that are CCPD2019 photo folders."""
    return [p for p in cfg.data.eval_sets if open_cfg_source(cfg, p).kind == "ccpd_photos"]


def real_and_synthetic(cfg: Config, n: int = 6, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Crops of ``n`` real plates from the first CCPD photo folder in ``data.eval_sets``, each followed by a
    synthetic rendering of the same plate text, cut out from its corners as the photos are; empty lists when
    no eval set is a CCPD photo folder."""
    sets = ccpd_eval_sets(cfg)
    if not sets:
        return [], []
    source = open_cfg_source(cfg, sets[0])
    rng = np.random.default_rng(seed)
    images, titles = [], []
    for rec in sample_records(source, "all", n, seed, cfg.data.skip_bad):
        images += [source.load(rec), render_plate(rec.text, rng, cfg.synth.degrade, rectified=True)]
        titles += [f"real: {rec.text}", f"synthetic: {rec.text}"]
    return images, titles


# --- evaluation --------------------------------------------------------------------------------------------


def eval_source(cfg: Config, name: str) -> Source:
    """The source behind an evaluation name: ``test`` is the configured data, anything else an eval set path."""
    return resolve_source(cfg) if name == "test" else open_cfg_source(cfg, name)


def evaluate_sets(cfg: Config, checkpoint: str | Path, device: str) -> dict[str, tuple[dict, pd.DataFrame]]:
    """``{"test": (summary, rows), <eval set>: (summary, rows), …}`` for the checkpoint, read as ``plate evaluate``
    reads it (``cfg.predict``: the runtime, the second look, the test-time views)."""
    model, _ = load_reader(checkpoint, device, cfg.predict.runtime)
    out = {}
    for name in ["test", *cfg.data.eval_sets]:
        data = load_cfg_split(cfg, "test") if name == "test" else load_cfg_split(cfg, "all", name)
        fix = ("Point data.source at data with a test/ folder or a folder of crops" if name == "test" else
               "Point this data.eval_sets entry at plate crops or CCPD2019 photos, or remove it")
        source = eval_source(cfg, name)
        require_plates(data, source, fix)
        out[name] = evaluate(model, data, list(cfg.provinces), cfg.training.eval_batch_size, device, source,
                             cfg.predict.rectify_below, cfg.predict.tta, cfg.predict.by_colour)
    return out


def set_labels(names: Sequence[str]) -> dict[str, str]:
    """A short label of each evaluation name (``evaluate_sets``' keys) for tables, curves and file names: ``test``
    for the test split, an eval set by its folder's name, with as many of the folders above it as make it unlike
    the others' and unlike ``test`` (``…/dl1/test`` is ``dl1/test``; ``cam1/crops`` and ``cam2/crops`` keep theirs)."""
    parts = {n: [p for p in Path(os.path.abspath(n)).parts if p not in ("/", "\\")] or [n] for n in names}
    depth = dict.fromkeys(names, 1)

    def clashing(labels: dict[str, str]) -> list[str]:  # as labels, and as the file names write_eval makes of them
        taken = Counter(v.replace("/", "_") for v in labels.values())
        return [n for n in names if n != "test" and (labels[n] == "test" or taken[labels[n].replace("/", "_")] > 1)]

    while True:
        labels = {n: n if n == "test" else "/".join(parts[n][-depth[n]:]) for n in names}
        grow = [n for n in clashing(labels) if depth[n] < len(parts[n])]
        if not grow:
            break
        for n in grow:
            depth[n] += 1
    for i, n in enumerate(clashing(labels), 1):  # the whole path clashes too (a set named twice): numbered
        labels[n] = f"{labels[n]} ({i})"
    return labels


def summary_table(summaries: dict[str, dict], seed: dict = SEED_RESULTS) -> pd.DataFrame:
    """Metrics (rows) × evaluation sets (columns, ``set_labels``), the seed's reported test numbers first."""
    label = set_labels(list(summaries))
    cols = {"seed notebook (test)": seed, **{("this run: " + label[k]): v for k, v in summaries.items()}}
    keys = ["n", "word_acc", "char_acc", "cer", "province_acc", "province_acc_non_wan", "province_acc_macro",
            "word_acc_non_wan"]
    return pd.DataFrame({c: [s.get(k, np.nan) for k in keys] for c, s in cols.items()}, index=keys)


# --- errors ------------------------------------------------------------------------------------------------


def province_confusions(rows: pd.DataFrame) -> pd.DataFrame:
    """``count, true, pred`` for each (true, predicted) province pair that differ, most frequent first."""
    pairs = Counter((t[:1], p[:1]) for t, p in zip(rows["true"], rows["pred"], strict=True) if t[:1] != p[:1])
    return _pair_table(pairs)


def symbol_edits(true: str, pred: str) -> list[tuple[str, str]]:
    """(true, predicted) symbol pairs of a Levenshtein alignment after the province; ``∅`` marks a missing side."""
    t, p = true[1:], pred[1:]
    out = []
    for op in Levenshtein.editops(t, p):
        if op.tag == "replace":
            out.append((t[op.src_pos], p[op.dest_pos]))
        elif op.tag == "delete":
            out.append((t[op.src_pos], MISSING))
        else:
            out.append((MISSING, p[op.dest_pos]))
    return out


def symbol_confusions(rows: pd.DataFrame) -> pd.DataFrame:
    """``count, true, pred`` over all plates' symbol edits (see ``symbol_edits``), most frequent first."""
    pairs = Counter(e for t, p in zip(rows["true"], rows["pred"], strict=True) for e in symbol_edits(t, p))
    return _pair_table(pairs)


def _pair_table(pairs: Counter) -> pd.DataFrame:
    df = pd.DataFrame([(n, t, p) for (t, p), n in pairs.items()], columns=["count", "true", "pred"])
    return df.sort_values(["count", "true", "pred"], ascending=[False, True, True], ignore_index=True)


def error_histogram(rows: pd.DataFrame, column: str = "char_errors", max_errors: int = 8) -> pd.Series:
    """Plates per number of wrong characters, 0..``max_errors`` (larger counts go into the last bin)."""
    counts = rows[column].clip(upper=max_errors).value_counts()
    return counts.reindex(range(max_errors + 1), fill_value=0).rename_axis("wrong characters").astype(int)


def error_table(rows: pd.DataFrame, seed: dict[int, int] = SEED_ERROR_COUNTS, max_errors: int = 8) -> pd.DataFrame:
    """Plates per number of wrong characters: position-wise (the seed's count), Levenshtein, and the seed's."""
    return pd.DataFrame({
        "position-wise": error_histogram(rows, "char_errors", max_errors),
        "Levenshtein": error_histogram(rows, "edit_distance", max_errors),
        "seed notebook": pd.Series(seed).reindex(range(max_errors + 1), fill_value=0).astype(int),
    }).rename_axis("wrong characters")


def error_galleries(rows: pd.DataFrame, min_errors: int = 3, per_count: int = 8,
                    column: str = "char_errors") -> dict[int, pd.DataFrame]:
    """``{k: up to per_count rows with exactly k wrong characters}`` for each k >= ``min_errors`` present."""
    wrong = rows[rows[column] >= min_errors].sort_values([column, "name"])
    return {int(k): g.head(per_count) for k, g in wrong.groupby(column)}


def least_confident_correct(rows: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    return rows[rows["correct"]].sort_values(["confidence", "name"], na_position="first").head(n)  # none: least sure


def most_confident_wrong(rows: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    return rows[~rows["correct"]].sort_values(["confidence", "name"], ascending=[False, True]).head(n)


def peer_misses(source: Source, rows: pd.DataFrame, readers: tuple[str, ...] = peers.PEERS
                ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The plates this model got wrong (evaluation ``rows``), ``name, true, pred``, with one column per installed
    peer (``peers.PEERS``) holding its reading of them; and why the absent peers were left out."""
    wrong = rows.loc[~rows["correct"], ["name", "true", "pred"]].reset_index(drop=True)
    readings, absent = peers.peer_readings(load_crops(source, wrong["name"].tolist()), readers) if len(wrong) \
        else ({}, {r: why for r in readers if (why := peers.missing(r))})
    for reader, texts in readings.items():
        wrong[reader] = texts
    return wrong, absent


def peer_columns(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` (``peer_misses``) that hold a peer's readings."""
    return [c for c in table.columns if c in peers.PEERS]


def read_by_a_peer(misses: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``peer_misses`` that some peer reads right."""
    read_by_one = np.zeros(len(misses), bool)
    for reader in peer_columns(misses):
        read_by_one |= (misses[reader] == misses["true"]).to_numpy()
    return misses[read_by_one]


def peer_wins(source: Source, rows: pd.DataFrame, readers: tuple[str, ...] = peers.PEERS
              ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The plates this model got wrong that an installed peer reads right (``peer_misses``, ``read_by_a_peer``)."""
    misses, absent = peer_misses(source, rows, readers)
    return read_by_a_peer(misses), absent


def labels_to_check(misses: pd.DataFrame) -> pd.DataFrame:
    """The misses of ``peer_misses`` that this model and a peer, or two peers, read as the same other plate
    (``label_suspects``): where readers agree against the label, the label may be what is wrong."""
    readings = {"this model": misses["pred"].tolist(),
                **{c: misses[c].tolist() for c in peer_columns(misses)}}
    return label_suspects(misses["name"].tolist(), misses["true"].tolist(), readings)


def label_suspects(names: Sequence[str], labels: Sequence[str], readings: Mapping[str, Sequence[str]],
                   min_agree: int = 2) -> pd.DataFrame:
    """The plates whose label at least ``min_agree`` readers agree against, reading the same other plate: ``name,
    label, reading, agree`` (how many) and ``readers``, most agreed first. A reader that trained on a plate tends
    to read its label back, right or wrong, so a training split is best audited by readers that never saw it.
    Where the readers agree against the label, the label is often what is wrong: look before correcting it
    (``data.label_fixes``)."""
    rows = []
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        votes = Counter(texts[i] for texts in readings.values() if texts[i] and texts[i] != label)
        if votes and (best := votes.most_common(1)[0])[1] >= min_agree:
            rows.append((name, label, best[0], best[1], " ".join(r for r, t in readings.items() if t[i] == best[0])))
    table = pd.DataFrame(rows, columns=["name", "label", "reading", "agree", "readers"])
    return table.sort_values(["agree", "name"], ascending=[False, True], ignore_index=True)


def plate_titles(rows: pd.DataFrame, confidence: bool = False) -> list[str]:
    """``True: 皖A12345  pred: 皖A12346`` per row (with the confidence when asked)."""
    return [f"True: {t}  pred: {p}" + (f"  ({c:.2g})" if confidence else "")
            for t, p, c in zip(rows["true"], rows["pred"], rows["confidence"], strict=True)]


# --- accuracy by group -------------------------------------------------------------------------------------


def province_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Per true province: ``n, word_acc, province_acc, cer`` (``metrics.per_province``), then a row for all
    plates not from 皖."""
    table = metrics.per_province(rows["pred"].tolist(), rows["true"].tolist())
    other = rows[rows["true"].str[0] != metrics.HOME_PROVINCE]
    if len(other):
        s = metrics.summarize(other["pred"].tolist(), other["true"].tolist())
        table.loc[f"not {metrics.HOME_PROVINCE}"] = [s["n"], s["word_acc"], s["province_acc"], s["cer"]]
    return table.astype({"n": int})


def subset_metrics(rows: pd.DataFrame, column: str = "subset") -> pd.DataFrame:
    """``metrics.summarize`` per value of ``column`` (CCPD's sub-datasets), plus ``all``."""
    groups = {str(k): g for k, g in rows.groupby(column)} | {"all": rows}
    out = pd.DataFrame({k: metrics.summarize(g["pred"].tolist(), g["true"].tolist()) for k, g in groups.items()}).T
    return out.astype({"n": int}).rename_axis(column)


def group_metrics(rows: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    """``subset_metrics`` of each value of ``column`` as plain numbers (``n`` an int), without ``all``."""
    table = subset_metrics(rows, column).drop("all")
    return {str(g): {k: (int(v) if k == "n" else float(v)) for k, v in m.items()} for g, m in table.iterrows()}


def plate_colours(source: Source, rows: pd.DataFrame) -> list[str]:
    """Each row's plate colour as ``plate predict`` calls it (``predict.plate_kind`` of the true text and the raw
    crop): ``green`` for 8 characters, else ``blue`` or ``yellow`` by the crop's hue, ``unknown`` where it has no
    colour to tell (night, infrared, washed out). One crop in memory at a time."""
    return [plate_kind(text, source.load(Record(name, "")))
            for name, text in zip(rows["name"], rows["true"], strict=True)]


def colour_tables(cfg: Config, results: dict[str, tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """``subset_metrics`` by plate colour (``plate_colours``) of every evaluated set, indexed by (set, colour)."""
    tables = {}
    label = set_labels(list(results))
    for name, (_, rows) in results.items():
        coloured = rows.assign(colour=plate_colours(eval_source(cfg, name), rows))
        tables[label[name]] = subset_metrics(coloured, "colour")
    return pd.concat(tables, names=["eval set"])


def subset_tables(results: dict[str, tuple[dict, pd.DataFrame]], column: str = "subset") -> pd.DataFrame:
    """``subset_metrics`` of every evaluation set that has a ``column``, indexed by (set, subset); may be empty."""
    label = set_labels(list(results))
    tables = {label[k]: subset_metrics(rows, column) for k, (_, rows) in results.items() if column in rows}
    return pd.concat(tables, names=["eval set"]) if tables else pd.DataFrame()
