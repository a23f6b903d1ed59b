"""Benchmarks keep their committed results: a run on other splits writes beside them, never over them."""

import json
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from real_sets import default_out  # noqa: E402


def test_a_study_on_the_splits_it_chooses_on_writes_the_committed_file():
    assert default_out("second_look", ["train", "val"], kept=("train", "val")) == REPO / "benchmarks" / "second_look.json"
    assert default_out("tta", ["val", "train"], kept=("train", "val")) == REPO / "benchmarks" / "tta.json"
    assert default_out("robustness", "test", kept=("test",)) == REPO / "benchmarks" / "robustness.json"


def test_a_study_on_other_splits_writes_a_file_named_by_them():
    assert default_out("second_look", ["test"], kept=("train", "val")) == REPO / "benchmarks" / "second_look-test.json"
    assert default_out("confidence", ["val", "test"], kept=("val",)) == REPO / "benchmarks" / "confidence-val-test.json"
    assert default_out("robustness", "val", kept=("test",), suffix=".png") == REPO / "benchmarks" / "robustness-val.png"


def test_robustness_refuses_to_replace_a_kept_run_read_on_another_split(tmp_path):
    kept = {"runs": {"shipped": {"checkpoint": "models/plate_default.pt", "split": "test", "labels": "corrected",
                                 "sets": {}, "rows": []}}}
    out = tmp_path / "robustness.json"
    out.write_text(json.dumps(kept), encoding="utf-8")
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "robustness.py"), "--split", "val",
                          "--fixed-labels", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "keeps the run 'shipped' on the test split" in run.stderr and "another --label or --out" in run.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == kept  # untouched
    assert not out.with_suffix(".png").exists()
