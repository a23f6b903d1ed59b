"""analysis: the report's tables, checked on hand-made evaluation rows and the tiny dl1 zip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import CCPD_SAMPLE, needs_sample

from plate_lib import analysis
from plate_lib.config import AugmentConfig, PreprocessConfig, load
from plate_lib.sources import open_source


def rows_of(pairs: list[tuple[str, str]], confidence: list[float] | None = None, **extra) -> pd.DataFrame:
    """Evaluation rows as ``inference.evaluate`` returns them, from (true, pred) pairs."""
    from plate_lib.metrics import char_errors, edit_distance

    df = pd.DataFrame({"name": [f"{i:03d}.jpg" for i in range(len(pairs))],
                       "true": [t for t, _ in pairs], "pred": [p for _, p in pairs]})
    df["confidence"] = confidence if confidence is not None else np.linspace(0.9, 0.1, len(pairs))
    df["correct"] = df["true"] == df["pred"]
    df["char_errors"] = [char_errors(p, t) for t, p in pairs]
    df["edit_distance"] = [edit_distance(p, t) for t, p in pairs]
    for k, v in extra.items():
        df[k] = v
    return df


# --- confusions ----------------------------------------------------------------------------------------------


def test_province_confusions_counts_pairs_most_frequent_first():
    rows = rows_of([("苏A12345", "皖A12345"), ("苏B11111", "皖B11111"), ("浙C22222", "沪C22222"),
                    ("皖A00000", "皖A00000"), ("皖A00001", "皖A00009")])
    table = analysis.province_confusions(rows)
    assert table.to_dict("records") == [{"count": 2, "true": "苏", "pred": "皖"},
                                        {"count": 1, "true": "浙", "pred": "沪"}]


def test_province_confusions_is_empty_when_every_province_is_right():
    table = analysis.province_confusions(rows_of([("皖A12345", "皖A12346")]))
    assert table.empty and list(table.columns) == ["count", "true", "pred"]


def test_symbol_edits_substitution():
    assert analysis.symbol_edits("皖A12345", "皖A12845") == [("3", "8")]


def test_symbol_edits_dropped_character_counts_once_not_as_a_shift():
    # position-wise this is 2 errors (5 where 4 was, then a missing one); aligned it is one deletion
    assert analysis.symbol_edits("皖A12345", "皖A1235") == [("4", analysis.MISSING)]


def test_symbol_edits_extra_character_and_province_ignored():
    assert analysis.symbol_edits("皖A12345", "苏A123345") == [(analysis.MISSING, "3")]


def test_symbol_confusions_sums_over_plates_sorted_by_count_then_characters():
    rows = rows_of([("皖A12345", "皖4123L5"), ("皖A00001", "皖400007"), ("皖B11111", "皖B11111")])
    table = analysis.symbol_confusions(rows)
    assert table.to_dict("records") == [{"count": 2, "true": "A", "pred": "4"},
                                        {"count": 1, "true": "1", "pred": "7"},
                                        {"count": 1, "true": "4", "pred": "L"}]


# --- error counts ---------------------------------------------------------------------------------------------


def test_error_histogram_has_every_bin_from_0_to_8_and_clips_larger_counts():
    rows = pd.DataFrame({"char_errors": [0, 0, 1, 3, 8], "edit_distance": [0, 0, 1, 2, 11]})
    hist = analysis.error_histogram(rows, "char_errors")
    assert hist.index.tolist() == list(range(9))
    assert hist.tolist() == [2, 1, 0, 1, 0, 0, 0, 0, 1]
    assert analysis.error_histogram(rows, "edit_distance").tolist() == [2, 1, 1, 0, 0, 0, 0, 0, 1]


def test_error_table_puts_position_wise_levenshtein_and_seed_side_by_side():
    # a dropped character shifts the rest: 5 position-wise errors, Levenshtein distance 1
    table = analysis.error_table(rows_of([("皖A12345", "皖A2345"), ("皖A12345", "皖A12345")]))
    assert list(table.columns) == ["position-wise", "Levenshtein", "seed notebook"]
    assert table.loc[5, "position-wise"] == 1 and table.loc[1, "Levenshtein"] == 1
    assert table.loc[0].tolist() == [1, 1, 9126]
    assert table["seed notebook"].sum() == 9999  # the seed's 9,999 test plates


# --- galleries --------------------------------------------------------------------------------------------------


def test_error_galleries_keep_counts_at_or_above_the_minimum_capped_per_count():
    pairs = [("皖A12345", "皖A12345"), ("皖A12345", "皖A99945"), ("皖A12345", "皖A99995"),
             ("皖A12345", "皖A99945"), ("皖A12345", "皖A99999"), ("皖A12345", "皖A99945")]
    galleries = analysis.error_galleries(rows_of(pairs), min_errors=3, per_count=2)
    assert list(galleries) == [3, 4, 5]
    assert galleries[3]["name"].tolist() == ["001.jpg", "003.jpg"]  # three plates had 3 errors: first two by name
    assert len(galleries[4]) == 1 and len(galleries[5]) == 1


def test_least_confident_correct_and_most_confident_wrong():
    rows = rows_of([("皖A11111", "皖A11111"), ("皖A22222", "皖A22222"), ("皖A33333", "皖A33338"),
                    ("皖A44444", "皖A44448")], confidence=[0.9, 0.2, 0.95, 0.3])
    assert analysis.least_confident_correct(rows, 1)["true"].tolist() == ["皖A22222"]
    assert analysis.least_confident_correct(rows)["true"].tolist() == ["皖A22222", "皖A11111"]
    assert analysis.most_confident_wrong(rows)["true"].tolist() == ["皖A33333", "皖A44444"]
    assert analysis.most_confident_wrong(rows.iloc[:2]).empty


def test_plate_titles_name_truth_and_prediction():
    rows = rows_of([("皖A12345", "皖A12346")], confidence=[0.123])
    assert analysis.plate_titles(rows) == ["True: 皖A12345  pred: 皖A12346"]
    assert analysis.plate_titles(rows, confidence=True) == ["True: 皖A12345  pred: 皖A12346  (0.12)"]


# --- accuracy by group ------------------------------------------------------------------------------------------


def test_province_accuracy_adds_a_row_for_plates_not_from_wan():
    rows = rows_of([("皖A11111", "皖A11111"), ("皖A22222", "皖A22229"), ("苏A33333", "皖A33333"),
                    ("浙A44444", "浙A44444")])
    table = analysis.province_accuracy(rows)
    assert table.index.tolist() == ["皖", "浙", "苏", "not 皖"]
    assert table.loc["皖", "word_acc"] == 0.5
    assert table.loc["not 皖", "n"] == 2
    assert table.loc["not 皖", "province_acc"] == 0.5


def test_subset_metrics_per_subset_and_all():
    rows = rows_of([("皖A11111", "皖A11111"), ("皖A22222", "皖A22229"), ("皖AD12345", "皖AD12345")],
                   subset=["ccpd_base", "ccpd_base", "ccpd_green"])
    table = analysis.subset_metrics(rows)
    assert table.index.tolist() == ["ccpd_base", "ccpd_green", "all"]
    assert table.loc["ccpd_base", "word_acc"] == 0.5 and table.loc["ccpd_green", "n"] == 1
    assert table.loc["all", "n"] == 3


def test_subset_tables_skip_sets_without_subsets():
    plain = rows_of([("皖A11111", "皖A11111")])
    photos = rows_of([("皖A11111", "皖A11111")], subset=["ccpd_base"])
    table = analysis.subset_tables({"test": ({}, plain), "../x/ccpd-sample": ({}, photos)})
    assert table.index.tolist() == [("ccpd-sample", "ccpd_base"), ("ccpd-sample", "all")]
    assert analysis.subset_tables({"test": ({}, plain)}).empty


def test_summary_table_puts_the_seed_first_and_leaves_unreported_numbers_empty():
    table = analysis.summary_table({"test": {"n": 10, "word_acc": 0.5, "cer": 0.1},
                                    "../shared/data/ccpd2019-sample": {"n": 3, "word_acc": 1.0}})
    assert list(table.columns) == ["seed notebook (test)", "this run: test", "this run: ccpd2019-sample"]
    assert table.loc["word_acc", "seed notebook (test)"] == 0.91
    assert np.isnan(table.loc["cer", "seed notebook (test)"])
    assert table.loc["cer", "this run: test"] == 0.1


# --- the data ---------------------------------------------------------------------------------------------------


def test_split_counts_and_province_counts(dl1_zip):
    source = open_source(dl1_zip)
    counts = analysis.split_counts(source)
    assert counts.index.tolist() == ["train", "val", "test"]
    assert counts.loc["train", "plates"] + counts.loc["val", "plates"] == 30
    assert counts.loc["test", "plates"] == 3
    assert counts.loc["test", "green share"] == pytest.approx(1 / 3)
    provinces = analysis.province_counts([r.text for r in source.records("all")])
    assert provinces.index[0] == "皖" and provinces["皖"] == 12 and provinces.sum() == 33


def test_files_in_no_split_are_counted_for_the_data_notebook(tmp_path, dl1_zip):
    from conftest import plate_jpeg

    assert analysis.not_read(open_source(dl1_zip)) == {"images not in a label list (none)": 0,
                                                       "ccpd_np/ photos without a plate": 0}
    (tmp_path / "c").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "c" / name).write_bytes(plate_jpeg())
    (tmp_path / "c" / "labels.txt").write_text("a.jpg 苏E12345\n", encoding="utf-8")
    assert analysis.not_read(open_source(tmp_path / "c"))["images not in the label list (labels.txt)"] == 2
    name = "01-90_88-100&50_180&90-178&88_101&86_102&52_179&55-0_0_1_2_3_4_5-100-10.jpg"
    for sub, file in (("ccpd_base", name), ("ccpd_np", "1005.jpg")):
        (tmp_path / "ccpd" / sub).mkdir(parents=True)
        (tmp_path / "ccpd" / sub / file).write_bytes(plate_jpeg())
    assert analysis.not_read(open_source(tmp_path / "ccpd"))["ccpd_np/ photos without a plate"] == 1
    (tmp_path / "ccpd" / "splits").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / "ccpd" / "splits" / f"{split}.txt").write_text("", encoding="utf-8")
    assert analysis.not_read(open_source(tmp_path / "ccpd", ccpd_split="official")) == {
        "images not in CCPD2019's split lists": 1, "ccpd_np/ photos without a plate": 1}


def test_sample_records_is_seeded_and_keeps_listed_order(dl1_zip):
    source = open_source(dl1_zip)
    a, b = (analysis.sample_records(source, "all", 5, seed=3) for _ in range(2))
    names = [r.name for r in source.records("all")]
    assert [r.name for r in a] == [r.name for r in b]
    assert [names.index(r.name) for r in a] == sorted(names.index(r.name) for r in a)
    assert len(analysis.sample_records(source, "test", 100)) == 3


def test_crop_sizes_and_load_crops_read_the_raw_images(dl1_zip):
    source = open_source(dl1_zip)
    recs = source.records("test")
    sizes = analysis.crop_sizes(source, recs)
    assert sizes[["width", "height"]].drop_duplicates().values.tolist() == [[120, 40]]  # conftest's plate_jpeg
    crops = analysis.load_crops(source, [r.name for r in recs])
    assert crops[0].shape == (40, 120, 3) and crops[0].dtype == np.uint8


def test_letterboxed_and_augment_draws_shapes():
    crops = [np.full((40, 120, 3), 128, np.uint8), np.full((60, 100, 3), 30, np.uint8)]
    x = analysis.letterboxed(crops, PreprocessConfig(height=24, width=72, grayscale=True))
    assert x.shape == (2, 24, 72, 1)
    draws = analysis.augment_draws(x, AugmentConfig(), draws=3, seed=0)
    assert draws.shape == (2, 4, 24, 72, 1) and draws.dtype == np.uint8
    assert np.array_equal(draws[:, 0], x)  # the first column is the input itself
    assert not np.array_equal(draws[:, 1], draws[:, 2])  # independent draws
    assert np.array_equal(draws, analysis.augment_draws(x, AugmentConfig(), draws=3, seed=0))


def test_open_dataset_generates_a_missing_synthetic_zip_quietly(tmp_path, capsys):
    cfg = load(None, {"data.synthetic_path": str(tmp_path / "syn.zip"), "synth.n_train": 4, "synth.n_test": 2,
                      "synth.workers": 1})
    source = analysis.open_dataset(cfg)
    assert (tmp_path / "syn.zip").is_file() and len(source.records("all")) == 6
    assert capsys.readouterr().err == ""  # no progress bar


def test_real_and_synthetic_is_empty_without_a_ccpd_eval_set(dl1_zip):
    cfg = load(None, {"data.eval_sets": [str(dl1_zip)]})
    assert analysis.ccpd_eval_sets(cfg) == []
    assert analysis.real_and_synthetic(cfg) == ([], [])


@needs_sample
def test_real_and_synthetic_pairs_each_real_crop_with_a_rendering_of_its_text():
    cfg = load(None, {"data.eval_sets": [str(CCPD_SAMPLE)]})
    images, titles = analysis.real_and_synthetic(cfg, n=2)
    assert len(images) == 4 and titles[0].removeprefix("real: ") == titles[1].removeprefix("synthetic: ")
    assert all(im.ndim == 3 and im.shape[2] == 3 for im in images)


# --- peers ---------------------------------------------------------------------------------------------------


def test_peer_wins_keeps_the_misses_that_some_peer_reads_right(monkeypatch, dl1_zip):
    from plate_lib import peers, plots

    source = open_source(dl1_zip)
    names = [r.name for r in source.records("test")]
    rows = rows_of([("皖A54321", "皖A54321"), ("鲁Q99999", "皖Q99999"), ("皖AF12345", "皖AF1245")])
    rows["name"] = names
    asked = []

    def fake_readings(images, readers):
        asked.append(len(images))  # only the plates this model got wrong are read
        return {"hyperlpr": ["鲁Q99999", "皖AF1245"], "lprnet": ["鲁Q9999", "皖AF12345"]}, {"hyperlpr_refine": "absent"}

    monkeypatch.setattr(peers, "peer_readings", fake_readings)
    wins, absent = analysis.peer_wins(source, rows)
    assert asked == [2] and absent == {"hyperlpr_refine": "absent"}
    assert wins[["true", "pred", "hyperlpr", "lprnet"]].values.tolist() == [
        ["鲁Q99999", "皖Q99999", "鲁Q99999", "鲁Q9999"], ["皖AF12345", "皖AF1245", "皖AF1245", "皖AF12345"]]
    assert len(plots.peer_gallery(source, wins, absent, "won").axes) == 2
    # the miss that this model and HyperLPR read alike is a label to check; the other is not
    misses, _ = analysis.peer_misses(source, rows)
    assert analysis.labels_to_check(misses).values.tolist() == [
        [names[2], "皖AF12345", "皖AF1245", 2, "this model hyperlpr"]]


def test_label_suspects_are_the_labels_enough_readers_agree_against():
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    labels = ["苏E12345", "苏B11110", "沪D02288", "苏A12345"]
    readings = {"plate_lib": ["苏E12345", "苏B11110", "沪DD2288", "苏A12345"],
                "hyperlpr": ["苏E12345", "苏B1L110", "沪D02288", "苏A1234"],
                "hyperlpr_refine": ["苏E12345", "苏B1L110", "沪DD2288", "苏A12346"]}
    table = analysis.label_suspects(names, labels, readings)
    # b: two readers read an L where the label has a 1; c: two agree on a D, one reads the label (a person checks);
    # d: two readers disagree with the label but not with each other's reading, so nothing is agreed against it
    assert table.values.tolist() == [["b.jpg", "苏B11110", "苏B1L110", 2, "hyperlpr hyperlpr_refine"],
                                     ["c.jpg", "沪D02288", "沪DD2288", 2, "plate_lib hyperlpr_refine"]]
    assert analysis.label_suspects(names, labels, readings, min_agree=3).empty


def test_peer_wins_is_empty_with_a_note_when_no_peer_is_installed(monkeypatch, tmp_path, dl1_zip):
    from plate_lib import peers, plots

    monkeypatch.setattr(peers, "PEERS_VENV", tmp_path / "none")
    monkeypatch.setattr(peers, "LPRNET_WEIGHTS", tmp_path / "none.pth")
    source = open_source(dl1_zip)
    rows = rows_of([("皖A54321", "皖A54322")])
    rows["name"] = [source.records("test")[0].name]
    wins, absent = analysis.peer_wins(source, rows)
    assert wins.empty and set(absent) == set(peers.PEERS)
    fig = plots.peer_gallery(source, wins, absent, "won")
    assert "skipped, no peer installed" in fig.axes[0].texts[0].get_text()


def test_colour_tables_read_blue_yellow_and_green_plates_apart(tmp_path):
    # a crops folder of rendered plates: two yellow, one blue, one green (8 characters); the yellow 苏 plate is misread
    import cv2

    from plate_lib.synth import render_plate

    rng = np.random.default_rng(0)
    plates = [("苏E12345", "yellow"), ("浙B77777", "yellow"), ("沪A24680", "blue"), ("皖AD12345", "green")]
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, (text, colour) in enumerate(plates):
        cv2.imwrite(str(folder / f"{i:03d}.png"), render_plate(text, rng, degrade=0.0, rectified=True, colour=colour))
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{i:03d}.png,{t}\n" for i, (t, _) in
                                                                 enumerate(plates)), encoding="utf-8")
    rows = rows_of([(t, "苏E12346" if i == 0 else t) for i, (t, _) in enumerate(plates)])
    rows["name"] = [f"{i:03d}.png" for i in range(len(plates))]
    source = open_source(folder)
    assert analysis.plate_colours(source, rows) == [c for _, c in plates]

    cfg = load(None, {"data.source": str(folder)})
    table = analysis.colour_tables(cfg, {"test": ({}, rows)})
    assert table.loc[("test", "yellow"), "n"] == 2 and table.loc[("test", "yellow"), "word_acc"] == 0.5
    assert table.loc[("test", "blue"), "word_acc"] == 1.0 and table.loc[("test", "green"), "n"] == 1
    assert table.loc[("test", "all"), "n"] == 4


def test_each_evaluated_set_gets_a_label_of_its_own_never_the_test_splits():
    labels = analysis.set_labels(["test", "/data/CCPD2019-dl1/test", "/cams/cam1/crops", "/cams/cam2/crops",
                                  "../shared/data/ccpd2019-sample"])
    assert labels == {"test": "test", "/data/CCPD2019-dl1/test": "CCPD2019-dl1/test", "/cams/cam1/crops": "cam1/crops",
                      "/cams/cam2/crops": "cam2/crops", "../shared/data/ccpd2019-sample": "ccpd2019-sample"}
    assert analysis.set_labels(["test", "./test"])["./test"] != "test"  # a folder named test, given relative
    files = analysis.set_labels(["test", "/a/dl1_test", "/b/dl1/test"]).values()
    assert len({v.replace("/", "_") for v in files}) == 3  # their eval-<label>.csv files differ too
    summaries = {k: {"n": i} for i, k in enumerate(labels)}
    assert list(analysis.summary_table(summaries).columns) == ["seed notebook (test)", *(f"this run: {v}" for v in labels.values())]


def test_with_skip_bad_a_sample_leaves_out_the_crops_that_do_not_load(tmp_path, caplog):
    from conftest import plate_jpeg

    (tmp_path / "皖A12345.jpg").write_bytes(plate_jpeg())
    (tmp_path / "苏B88888.jpg").write_bytes(plate_jpeg()[:200])  # cut short: no image
    src = open_source(tmp_path)
    with pytest.raises(Exception, match="苏B88888"):
        analysis.crop_sizes(src, analysis.sample_records(src, "all", 10))
    with caplog.at_level("WARNING"):
        kept = analysis.sample_records(src, "all", 10, skip_bad=True)
    assert [r.name for r in kept] == ["皖A12345.jpg"] and "skipped 1 bad sample(s) (data.skip_bad): 苏B88888.jpg" in caplog.text
    assert len(analysis.crop_sizes(src, kept)) == 1


def test_per_province_and_its_bars_take_no_plates():
    from plate_lib import metrics, plots

    assert metrics.per_province([], []).empty
    assert plots.count_bars(pd.Series(dtype=int), "none").get_size_inches()[1] < 1  # a one-line note
