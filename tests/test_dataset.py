"""Dataset: letterboxing, the decoded cache (reused, rebuilt on change, never half-written on a full disk), bad
samples, empty splits, batches."""

import errno
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from conftest import plate_jpeg, write_dl1_zip

from plate_lib.config import PreprocessConfig
from plate_lib.dataset import (
    DiskFullError,
    PlateBatches,
    batch_loader,
    cached_splits,
    load_split,
    prune_cache,
    require_plates,
)
from plate_lib.preprocess import TTA_VIEWS, letterbox, tta_views
from plate_lib.sources import DataError, Dl1Zip, open_source

PRE = PreprocessConfig(height=48, width=144, grayscale=True)


def test_letterbox_keeps_the_aspect_ratio_and_pads():
    wide = np.full((20, 200, 3), 255, np.uint8)  # 10:1, wider than 3:1
    out = letterbox(wide, 48, 144, grayscale=True)
    assert out.shape == (48, 144, 1)
    rows = np.where(out[:, :, 0].max(1) > 0)[0]
    assert len(rows) == round(20 * 144 / 200)  # 14 rows of plate, the rest padding
    assert out[:, :, 0].min() == 0
    colour = letterbox(wide, 48, 144, grayscale=False)
    assert colour.shape == (48, 144, 3)


def test_the_test_time_views_are_the_crop_as_given_looser_and_tighter():
    crop = np.random.default_rng(0).integers(0, 256, (50, 160, 3), np.uint8)
    given, padded, cut = tta_views(crop)
    assert len(TTA_VIEWS) == 3 and given is crop
    assert padded.shape == (56, 166, 3) and (padded[3:53, 3:163] == crop).all()  # 6 % of the height around it
    assert cut.shape == (46, 154, 3) and (cut == crop[2:48, 3:157]).all()  # 4 % of the height, 2 % of the width
    tiny = crop[:4, :20]
    assert tta_views(tiny)[2] is tiny  # too small to cut: read as given in its place


def test_split_is_decoded_once_then_read_from_the_cache(dl1_zip, tmp_path):
    src = Dl1Zip(dl1_zip)
    first = load_split(src, "train", PRE, tmp_path / "cache", workers=1)
    assert first.images.shape[1:] == (48, 144, 1) and len(first) == len(src.records("train"))
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2  # one .npy, one .json
    again = load_split(Dl1Zip(dl1_zip), "train", PRE, tmp_path / "cache")
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(np.asarray(again.images), first.images) and again.texts == first.texts
    # other preprocessing settings make another cache entry
    load_split(src, "train", PreprocessConfig(height=32, width=96), tmp_path / "cache", workers=1)
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_a_changed_source_rebuilds_the_cache(tmp_path, caplog):
    path = write_dl1_zip(tmp_path / "d.zip", {"test": ["皖A00000"]})
    assert load_split(Dl1Zip(path), "test", PRE, tmp_path / "c").texts == ["皖A00000"]
    write_dl1_zip(path, {"test": ["皖A00000", "苏A11111"]})
    with caplog.at_level("INFO"):
        assert load_split(Dl1Zip(path), "test", PRE, tmp_path / "c").texts == ["皖A00000", "苏A11111"]
    assert "holds 2 cached split(s)" in caplog.text and "nothing prunes them" in caplog.text  # the old one stays


def test_the_cache_says_what_each_split_came_from_and_prunes_the_ones_unused(dl1_zip, tmp_path):
    cache = tmp_path / "cache"
    load_split(Dl1Zip(dl1_zip), "train", PRE, cache, workers=1)
    load_split(Dl1Zip(dl1_zip), "test", PRE, cache, workers=1)
    listed = {c.about["split"]: c for c in cached_splits(cache)}
    assert set(listed) == {"train", "test"}
    assert listed["train"].about["source"] == str(dl1_zip) and listed["train"].plates == len(Dl1Zip(dl1_zip).records("train"))
    assert listed["train"].bytes == sum(p.stat().st_size for p in listed["train"].files) and len(listed["train"].files) == 2
    week_ago = listed["test"].last_used - 7 * 86400
    for c in listed.values():  # both last used a week ago; then the test split is read again
        for p in c.files:
            os.utime(p, (week_ago, week_ago))
    load_split(Dl1Zip(dl1_zip), "test", PRE, cache)
    assert [c.about["split"] for c in cached_splits(cache)] == ["train", "test"]  # least recently used first
    gone = prune_cache(cache, unused_days=1)
    assert [c.about["split"] for c in gone] == ["train"]
    assert not any(p.exists() for p in listed["train"].files) and all(p.exists() for p in listed["test"].files)
    assert not isinstance(load_split(Dl1Zip(dl1_zip), "train", PRE, cache, workers=1).images, np.memmap)  # decoded anew
    assert len(prune_cache(cache, unused_days=0)) == 2 and cached_splits(cache) == []


def test_plate_cache_lists_the_cached_splits_and_prunes_on_request(dl1_zip, tmp_path, capsys):
    from plate_lib.cli import main

    cache = tmp_path / "cache"
    load_split(Dl1Zip(dl1_zip), "test", PRE, cache, workers=1)
    (cache / "train-0123456789abcdef.npy").write_bytes(b"x" * 10)  # an array whose index was never written
    others = [cache / "my-labels.json", cache / "word-embeddings.npy", cache / "train-notes.json"]
    for p in others:  # files of the user's that happen to sit there: never listed, never deleted
        p.write_text("{}", encoding="utf-8")
    assert main(["cache", "--dir", str(cache)]) == 0
    out, err = capsys.readouterr()
    header, *rows = out.strip().split("\n")
    assert header.split("\t") == ["last_used", "split", "plates", "size", "source", "cache"]
    assert sorted(r.split("\t")[1] for r in rows) == ["test", "train"] and str(dl1_zip) in out
    assert "2 cached split(s)" in err and "--prune DAYS" in err
    assert main(["cache", "--dir", str(cache), "--prune", "0"]) == 0
    assert "2 cached split(s) unused for 0 day(s) deleted" in capsys.readouterr().err
    assert sorted(cache.iterdir()) == sorted(others)
    with pytest.raises(SystemExit) as refused:
        main(["cache", "--dir", str(cache), "--prune", "-3"])
    assert refused.value.code == 2 and "a number of days, 0 or more" in capsys.readouterr().err
    assert main(["cache", "--dir", str(others[0])]) == 2 and "is a file" in capsys.readouterr().err


def _folder_with_bad_samples(tmp_path):
    d = tmp_path / "crops"
    d.mkdir()
    (d / "1-皖A12345.jpg").write_bytes(plate_jpeg())
    (d / "2-皖A22222.jpg").write_bytes(b"")  # zero bytes
    (d / "3-皖A33333.jpg").write_text("not an image")
    (d / "4-皖A1234.jpg").write_bytes(plate_jpeg())  # label one character short
    return d


def test_bad_samples_fail_loudly_naming_each_file(tmp_path):
    with pytest.raises(DataError) as e:
        load_split(open_source(_folder_with_bad_samples(tmp_path)), "all", PRE)
    assert "4-皖A1234.jpg" in str(e.value) and "skip_bad" in str(e.value)


def test_a_folder_of_unlabelled_images_points_to_plate_predict(tmp_path):
    for name in ("IMG_0001.jpg", "IMG_0002.jpg"):
        (tmp_path / name).write_bytes(plate_jpeg())
    with pytest.raises(DataError, match=r"None of its file names is a plate and it has no label list.*labels\.txt.*"
                                        r"use `plate predict FOLDER`"):
        load_split(open_source(tmp_path), "all", PRE)
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as zf:  # the same folder zipped
        zf.write(tmp_path / "IMG_0001.jpg", "photos/IMG_0001.jpg")
    with pytest.raises(DataError, match=r"None of its file names is a plate and it has no label list"):
        load_split(open_source(tmp_path / "zipped.zip"), "all", PRE)


def test_skip_bad_counts_and_lists_the_skipped(tmp_path, caplog):
    data = load_split(open_source(_folder_with_bad_samples(tmp_path)), "all", PRE, skip_bad=True, workers=1)
    assert data.texts == ["皖A12345"]
    skipped = dict(data.skipped)
    assert set(skipped) == {"2-皖A22222.jpg", "3-皖A33333.jpg", "4-皖A1234.jpg"}
    assert "empty file" in skipped["2-皖A22222.jpg"] and "not a decodable image" in skipped["3-皖A33333.jpg"]
    assert "skipped 3 bad sample(s)" in caplog.text


def test_batches_carry_padded_ctc_targets_for_7_and_8_character_plates(dl1_zip):
    data = load_split(Dl1Zip(dl1_zip), "test", PRE, workers=1)
    ds = PlateBatches(data, list("皖沪津渝冀晋蒙辽吉黑苏浙京闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"))
    batch = next(iter(batch_loader(ds, batch_size=8, shuffle=False)))
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (3, 1, 48, 144)
    assert batch["target_lengths"].tolist() == [6, 6, 7]
    assert batch["targets"].shape == (3, 7) and batch["targets"][0, 6] == 0


def test_shuffling_is_seeded_by_seed_and_epoch(dl1_zip):
    ds = PlateBatches(load_split(Dl1Zip(dl1_zip), "train", PRE, workers=1), list("皖沪苏浙京"))
    order = lambda s, e: torch.cat([b["index"] for b in batch_loader(ds, 4, True, seed=s, epoch=e)]).tolist()  # noqa: E731
    assert order(0, 0) == order(0, 0) and order(0, 0) != order(0, 1)
    assert sorted(order(0, 1)) == list(range(len(ds)))


def test_an_epoch_draws_epoch_plates_each_plate_once_before_any_twice(dl1_zip):
    ds = PlateBatches(load_split(Dl1Zip(dl1_zip), "train", PRE, workers=1), list("皖沪苏浙京"))
    n = len(ds)
    order = torch.cat([b["index"] for b in batch_loader(ds, 4, True, draws=n + 3)]).tolist()
    counts = torch.bincount(torch.tensor(order), minlength=n)
    assert len(order) == n + 3 and counts.min() == 1 and (counts == 2).sum() == 3  # a whole lap, then 3 more
    assert len(torch.cat([b["index"] for b in batch_loader(ds, 4, True, draws=2)])) == 2
    weighted = batch_loader(ds, 4, True, weights=torch.ones(n), draws=10)
    assert sum(len(b["index"]) for b in weighted) == 10
    assert len(torch.cat([b["index"] for b in batch_loader(ds, 4, False, draws=2)])) == n  # validation reads all


def _cfg(tmp_path, **data):
    from plate_lib.config import load

    return load(None, {"data.cache_dir": str(tmp_path / "cache"), **{f"data.{k}": v for k, v in data.items()}})


def test_extra_training_sources_are_mixed_in_by_weight(tmp_path):
    from collections import Counter

    from plate_lib.dataset import load_training_set

    a = write_dl1_zip(tmp_path / "a.zip", {"train": [f"皖A{i:05d}" for i in range(300)]})
    b = write_dl1_zip(tmp_path / "b.zip", {"train": [f"苏B{i:05d}" for i in range(30)]})
    cfg = _cfg(tmp_path, source=str(a), train_sources=[{"path": str(b), "weight": 1.0}])
    data, weights = load_training_set(cfg)
    assert len(data) == len(Dl1Zip(a).records("train")) + len(Dl1Zip(b).records("train"))
    ds = PlateBatches(data, ["皖", "苏"])
    drawn = Counter(data.texts[i][0] for batch in batch_loader(ds, 64, True, weights=weights) for i in batch["index"].tolist())
    # equal weights: about half the draws from the small source, though it holds a tenth of the plates
    assert 0.35 < drawn["苏"] / sum(drawn.values()) < 0.65


def test_validation_joins_the_val_splits_of_sources_marked_for_it(tmp_path):
    from plate_lib.dataset import load_validation_set

    a = write_dl1_zip(tmp_path / "a.zip", {"train": [f"皖A{i:05d}" for i in range(200)]})
    b = write_dl1_zip(tmp_path / "b.zip", {"train": [f"苏B{i:05d}" for i in range(200)]})
    c = write_dl1_zip(tmp_path / "c.zip", {"train": [f"鲁Q{i:05d}" for i in range(200)]})
    cfg = _cfg(tmp_path, source=str(a), train_sources=[{"path": str(b), "validation": True}, {"path": str(c)}])
    val = load_validation_set(cfg)
    provinces = {t[0] for t in val.texts}
    assert provinces == {"皖", "苏"}  # c trains but does not validate
    assert len(val) == len(Dl1Zip(a).records("val")) + len(Dl1Zip(b).records("val"))


def test_data_label_fixes_correct_a_source_wherever_it_is_read(tmp_path, monkeypatch):
    from plate_lib.dataset import load_cfg_split

    folder = tmp_path / "crops"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(plate_jpeg("苏E12345"))
    (folder / "labels.csv").write_text("file,label\na.jpg,苏E1234\n", encoding="utf-8")  # a dropped digit
    (tmp_path / "fixes.csv").write_text("file,label,note\na.jpg,苏E12345,the last 5 was missing\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the key names the source as the config does, relative or not
    plain = load_cfg_split(_cfg(tmp_path, skip_bad=True), "all", "crops")
    fixed = load_cfg_split(_cfg(tmp_path, label_fixes={str(folder): "fixes.csv"}), "all", "crops")
    assert plain.texts == [] and fixed.texts == ["苏E12345"]  # the typo was a bad label; the fix mends it


def test_label_fixes_naming_none_of_the_configured_sources_are_found(tmp_path, monkeypatch):
    from plate_lib.dataset import unused_label_fixes

    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path, source="crops", eval_sets=["more"], label_fixes={"./crops": "a.csv", "more/": "b.csv",
                                                                            "crop": "c.csv"})
    assert unused_label_fixes(cfg) == ["crop"]  # a mistyped path: train warns that its fixes are not used


def test_resize_crops_brings_every_crop_to_one_size_and_keys_the_cache(tmp_path):
    a = write_dl1_zip(tmp_path / "a.zip", {"test": ["皖A00001"]})
    plain, small = open_source(a), open_source(a, resize=(94, 24))
    rec = plain.records("test")[0]
    assert small.load(rec).shape == (24, 94, 3) and plain.load(rec).shape != (24, 94, 3)
    assert small.fingerprint() != plain.fingerprint()
    with pytest.raises(DataError, match="data.resize_crops"):
        open_source(a, resize=(94,))


def test_province_balance_oversamples_rare_provinces(tmp_path):
    from plate_lib.dataset import load_training_set

    a = write_dl1_zip(tmp_path / "a.zip", {"train": [f"皖A{i:05d}" for i in range(200)] + ["鲁Q00001", "鲁Q00002", "鲁Q00003", "鲁Q00004"]})
    data, w = load_training_set(_cfg(tmp_path, source=str(a), province_balance=1.0))
    lu = [i for i, t in enumerate(data.texts) if t[0] == "鲁"]
    assert lu and float(w[lu].sum() / w.sum()) == pytest.approx(0.5)
    _, none = load_training_set(_cfg(tmp_path, source=str(a)))
    assert none is None  # one source, no balance: plain shuffling


def test_the_synthetic_zip_is_regenerated_when_the_synth_settings_change(tmp_path):
    from plate_lib.config import load
    from plate_lib.dataset import resolve_source

    zpath = tmp_path / "synthetic.zip"
    small = {"data.synthetic_path": str(zpath), "synth.n_train": 20, "synth.n_test": 5, "synth.workers": 1}
    first = resolve_source(load(None, small))
    assert len(first.records("all")) == 25
    stamp = zpath.stat().st_mtime_ns
    resolve_source(load(None, {**small, "synth.workers": 2}))  # workers do not change the plates: kept
    assert zpath.stat().st_mtime_ns == stamp
    again = resolve_source(load(None, {**small, "synth.n_train": 30}))
    assert len(again.records("all")) == 35  # not the stale 25-plate zip


# --- a full disk ------------------------------------------------------------------------------------------------


def _full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_the_cache_leaves_the_old_cache_and_no_half_cache(tmp_path, monkeypatch):
    import plate_lib.dataset as dataset

    path = write_dl1_zip(tmp_path / "d.zip", {"train": ["皖A00000", "苏A11111"] * 3, "test": ["沪B22222"]})
    cache = tmp_path / "cache"
    load_split(Dl1Zip(path), "test", PRE, cache, workers=1)
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    monkeypatch.setattr(dataset, "_save_npy", lambda p, images: (p.write_bytes(b"\x93NUMPY"), _full()))
    with pytest.raises(DiskFullError, match=r"train-\w+\.npy: no space left .* no train-\w+\.npy was written"):
        load_split(Dl1Zip(path), "train", PRE, cache, workers=1)
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before  # the test cache as it was, nothing else
    monkeypatch.undo()
    assert len(load_split(Dl1Zip(path), "train", PRE, cache, workers=1)) > 0  # room again: built as usual


# --- empty data ---------------------------------------------------------------------------------------------------


def _empty(data_path, split="test", skip_bad=False, split_option=True):
    src = open_source(data_path)
    data = load_split(src, split, PRE, skip_bad=skip_bad, workers=1)
    with pytest.raises(DataError) as e:
        require_plates(data, src, "FIX.", split_option=split_option)
    return str(e.value)


def test_an_empty_split_is_an_error_naming_the_source_the_split_and_what_was_found(tmp_path):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "no plates here")
    says = _empty(tmp_path / "empty.zip")
    assert says.startswith(f"the test split of {tmp_path / 'empty.zip'} is empty: no image files") and says.endswith("FIX.")

    only_train = write_dl1_zip(tmp_path / "train-only.zip", {"train": ["皖A00000", "苏A11111"]})
    says = _empty(only_train)
    assert "2 image file(s) in the source, 0 of them in this split" in says and "`--split all` reads all 2" in says
    assert "--split" not in _empty(only_train, split_option=False)

    files = {f"test/{i}-皖A1234{i}.jpg": b"" for i in range(3)}  # every one of them a bad sample
    folder = tmp_path / "crops"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    says = _empty(folder, skip_bad=True)
    assert "3 image file(s) in the source, 3 of them in this split, 3 rejected as bad samples (first: " in says
    assert "empty file" in says


def test_a_flat_crop_folder_with_an_empty_test_split_suggests_split_all(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for text in ("皖A00001", "皖A00002"):  # both land outside the test split (by the hash of their text)
        (folder / f"{text}.jpg").write_bytes(plate_jpeg(text))
    assert not open_source(folder).records("test")
    assert "`--split all` reads all 2 (a folder of crops without train/ and test/ is split by a hash" in _empty(folder)


def test_decoding_in_worker_processes_after_rendering_in_this_one_does_not_hang(tmp_path):
    # OpenCV threads that ran in the parent (synthetic plates drawn in-process with synth.workers=1) used to
    # deadlock forked decoding workers; they now start fresh (forkserver)
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "from plate_lib.config import PreprocessConfig\n"
        "from plate_lib.dataset import load_split\n"
        "from plate_lib.sources import open_source\n"
        "from plate_lib.synth import SynthConfig, generate_zip\n"
        "if __name__ == '__main__':\n"
        f"    z = generate_zip({str(tmp_path / 's.zip')!r}, SynthConfig(n_train=300, n_test=4, workers=1), progress=False)\n"
        "    print(len(load_split(open_source(z), 'train', PreprocessConfig(), None, workers=2)))\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 200


def test_worker_processes_decode_what_one_process_does_and_get_the_source_once_each(tmp_path, monkeypatch):
    # the source (its index of every plate, a zip's table of contents) used to be pickled with every chunk of
    # 256 plates, which made decoding a 300k-plate zip quadratic: now each worker gets it once
    texts = [f"皖A{i:05d}" for i in range(1100)]
    src = Dl1Zip(write_dl1_zip(tmp_path / "d.zip", {"train": texts}))
    one = load_split(src, "train", PRE, workers=1)
    pickled = []
    state = Dl1Zip.__getstate__
    monkeypatch.setattr(Dl1Zip, "__getstate__", lambda self: pickled.append(1) or state(self))
    two = load_split(src, "train", PRE, workers=2)
    assert len(one) > 4 * 256 * 0.8 and two.names == one.names and np.array_equal(two.images, one.images)
    assert len(pickled) <= 2  # once per worker, not once per chunk (4 chunks here)


def test_a_decoding_worker_imports_no_torch():
    # each worker process imports the module of the function it runs; importing torch in sixteen of them at once
    # took longer than the decoding itself on a GPU machine
    code = "import sys, plate_lib.preprocess; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
