"""Metrics on hand-made cases, each with the expected value worked out in a comment."""

import math

import pytest

from plate_lib.metrics import char_errors, edit_distance, paired_comparison, per_province, summarize


def test_a_shift_by_one_is_one_edit_but_many_positional_errors():
    # pred drops the 'A': Levenshtein 1 (one deletion), but every later position is off
    assert edit_distance("皖12345", "皖A12345") == 1
    assert char_errors("皖12345", "皖A12345") == 6


def test_summary_on_four_plates():
    trues = ["皖A12345", "皖A12345", "苏B88888", "沪AD12345"]
    preds = ["皖A12345", "皖A12346", "浙B88888", "沪AD1234"]
    m = summarize(preds, trues)
    assert m["n"] == 4
    assert m["word_acc"] == 0.25  # only the first is exact
    # positional errors 0 + 1 + 1 + 1 over 7 + 7 + 7 + 8 characters
    assert m["char_acc"] == pytest.approx(1 - 3 / 29)
    # edits 0 + 1 + 1 + 1 (a deletion) over 29 true characters
    assert m["cer"] == pytest.approx(3 / 29)
    assert m["province_acc"] == 0.75  # 苏 read as 浙
    # non-皖 plates: 苏 (wrong), 沪 (right)
    assert m["province_acc_non_wan"] == 0.5
    assert m["word_acc_non_wan"] == 0.0  # 苏B88888 and 沪AD12345 both wrong
    # per true province: 皖 2 of 2, 苏 0 of 1, 沪 1 of 1 -> mean of 1, 0, 1
    assert m["province_acc_macro"] == pytest.approx(2 / 3)


def test_macro_province_accuracy_weighs_a_rare_province_like_a_common_one():
    trues = ["皖A12345"] * 99 + ["藏A12345"]
    preds = ["皖A12345"] * 99 + ["皖A12345"]  # the one 藏 plate read as 皖
    m = summarize(preds, trues)
    assert m["province_acc"] == pytest.approx(0.99)  # the plain share hides it
    assert m["province_acc_macro"] == pytest.approx(0.5)  # (1 + 0) / 2


def test_non_wan_accuracy_is_nan_without_such_plates():
    assert math.isnan(summarize(["皖A12345"], ["皖A12345"])["province_acc_non_wan"])


def test_per_province_table_counts_each_province():
    df = per_province(["皖A12345", "苏B88888", "皖A00000"], ["皖A12345", "苏B88888", "皖A11111"])
    assert df.loc["皖", "n"] == 2 and df.loc["皖", "word_acc"] == 0.5
    assert df.loc["苏", "word_acc"] == 1.0
    assert list(df.index) == ["皖", "苏"]


def test_paired_comparison_counts_disagreements_and_gives_the_exact_mcnemar_p():
    a = [False] * 6 + [True] * 10 + [True] * 100  # 6 plates only a got wrong, 10 only b, 100 both right
    b = [True] * 6 + [False] * 10 + [True] * 100
    out = paired_comparison(a, b)
    assert (out["only_a_wrong"], out["only_b_wrong"]) == (6, 10)
    assert out["p_value"] == pytest.approx(2 * 14893 / 65536)  # P(X <= 6), X ~ Binomial(16, 1/2), two-sided
    assert paired_comparison(b, a)["p_value"] == out["p_value"]
    assert paired_comparison([False] * 10, [True] * 10)["p_value"] == pytest.approx(2 / 1024)


def test_paired_comparison_of_models_that_never_disagree_is_p_one_and_unequal_lengths_are_an_error():
    assert paired_comparison([True, False], [True, False]) == {"only_a_wrong": 0, "only_b_wrong": 0, "p_value": 1.0}
    with pytest.raises(ValueError, match="pair them by plate"):
        paired_comparison([True], [True, False])
