"""Metrics: word accuracy, position-wise char accuracy (the seed's), CER, province accuracy; paired model comparison."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from rapidfuzz.distance import Levenshtein

HOME_PROVINCE = "皖"  # CCPD was shot in Anhui: 88 % of the plates in its test subsets are 皖


def edit_distance(pred: str, true: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost 1."""
    return Levenshtein.distance(pred, true)


def char_errors(pred: str, true: str) -> int:
    """Position-wise wrong characters, as the seed counted them; a missing or extra character is wrong too."""
    n = max(len(pred), len(true))
    return sum(1 for i in range(n) if i >= len(pred) or i >= len(true) or pred[i] != true[i])


def summarize(preds: Sequence[str], trues: Sequence[str]) -> dict[str, float]:
    """The headline numbers: ``n, word_acc, char_acc, cer, province_acc, province_acc_non_wan,
    province_acc_macro, word_acc_non_wan``.

    ``char_acc`` is 1 - position-wise errors / characters of the longer string, per plate, summed;
    ``cer`` is the summed Levenshtein distance over the summed true length. ``province_acc_macro`` is the mean
    over the true provinces present of each one's province accuracy, so a rare province counts as much as 皖.
    The non-皖 numbers are NaN when no plate is from elsewhere.
    """
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions for {len(trues)} labels")
    n = len(trues)
    if n == 0:
        return {"n": 0, **dict.fromkeys(("word_acc", "char_acc", "cer", "province_acc", "province_acc_non_wan",
                                         "province_acc_macro", "word_acc_non_wan"), float("nan"))}
    words = sum(p == t for p, t in zip(preds, trues, strict=True))
    pos_chars = sum(max(len(p), len(t)) for p, t in zip(preds, trues, strict=True))
    pos_errors = sum(char_errors(p, t) for p, t in zip(preds, trues, strict=True))
    dist = sum(edit_distance(p, t) for p, t in zip(preds, trues, strict=True))
    prov_ok = [p[:1] == t[:1] for p, t in zip(preds, trues, strict=True)]
    non_wan = [ok for ok, t in zip(prov_ok, trues, strict=True) if t[:1] != HOME_PROVINCE]
    non_wan_words = [p == t for p, t in zip(preds, trues, strict=True) if t[:1] != HOME_PROVINCE]
    by_province: dict[str, list[bool]] = {}
    for ok, t in zip(prov_ok, trues, strict=True):
        by_province.setdefault(t[:1], []).append(ok)
    return {
        "n": n,
        "word_acc": words / n,
        "char_acc": 1 - pos_errors / pos_chars,
        "cer": dist / sum(len(t) for t in trues),
        "province_acc": sum(prov_ok) / n,
        "province_acc_non_wan": sum(non_wan) / len(non_wan) if non_wan else float("nan"),
        "province_acc_macro": sum(sum(v) / len(v) for v in by_province.values()) / len(by_province),
        "word_acc_non_wan": sum(non_wan_words) / len(non_wan_words) if non_wan_words else float("nan"),
    }


def paired_comparison(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, float]:
    """Two models read the same plates: where they disagree, and whether that could be chance.

    ``only_a_wrong`` and ``only_b_wrong`` count the plates exactly one of them got wrong; ``p_value`` is the
    exact two-sided McNemar test on those counts (binomial, p = 1/2): the chance of a split at least this
    uneven if both models were equally accurate. 1.0 when they never disagree.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(f"{len(correct_a)} results for model a, {len(correct_b)} for model b: pair them by plate")
    b = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if not x and y)
    c = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if x and not y)
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return {"only_a_wrong": b, "only_b_wrong": c, "p_value": min(1.0, 2 * tail)}


def per_province(preds: Sequence[str], trues: Sequence[str]) -> pd.DataFrame:
    """One row per true province: ``n``, ``word_acc``, ``province_acc``, ``cer``; most frequent first."""
    df = pd.DataFrame({"pred": list(preds), "true": list(trues)}, dtype=object)
    if df.empty:
        return pd.DataFrame(columns=["n", "word_acc", "province_acc", "cer"], index=pd.Index([], name="province"))
    df["province"] = df["true"].str[0]
    df["word_ok"] = df["pred"] == df["true"]
    df["province_ok"] = df["pred"].str[:1] == df["province"]
    df["dist"] = [edit_distance(p, t) for p, t in zip(df["pred"], df["true"], strict=True)]
    df["len"] = df["true"].str.len()
    g = df.groupby("province")
    out = pd.DataFrame({
        "n": g.size(),
        "word_acc": g["word_ok"].mean(),
        "province_acc": g["province_ok"].mean(),
        "cer": g["dist"].sum() / g["len"].sum(),
    })
    return out.sort_values(["n", "word_acc"], ascending=[False, False])
