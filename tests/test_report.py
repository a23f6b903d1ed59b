"""report: profile and override plumbing, the device and kernel choices, and run_report's control flow with
the notebooks stubbed out (nbval executes the real notebooks)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from plate_lib import config as config_mod
from plate_lib import report
from plate_lib.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def args(**kw) -> argparse.Namespace:
    base = {"config": "cfg.yaml", "data": None, "profile": None, "set": None, "quiet": True, "debug": False}
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root with a cfg.yaml and a profile; the working directory for the test."""
    write(tmp_path / "cfg.yaml", "training:\n  epochs: 5\n")
    write(tmp_path / "profiles" / "tiny.yaml", "training.epochs: 2\ntraining.batch_size: 16\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- profile, data, --set -----------------------------------------------------------------------------------


def test_read_profile_names_a_missing_file():
    with pytest.raises(ConfigError, match="profile nowhere.yaml not found"):
        config_mod.read_profile("nowhere.yaml")


def test_read_profile_rejects_a_list(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping of dotted keys"):
        config_mod.read_profile(write(tmp_path / "p.yaml", "- training.epochs: 3\n"))


def test_overrides_apply_profile_then_data_then_sets(project):
    o = config_mod.collect_overrides("x.zip", "profiles/tiny.yaml", ["training.epochs=7", "data.eval_sets=[a, b]"])
    assert o == {"training.epochs": 7, "training.batch_size": 16, "data.source": "x.zip", "data.eval_sets": ["a", "b"]}


def test_stacked_profiles_apply_in_order_the_later_winning(project):
    write(project / "profiles" / "more.yaml", "training.epochs: 5\nrun.name: stage2\n")
    o = config_mod.collect_overrides(None, ["profiles/tiny.yaml", "profiles/more.yaml"], ["run.name=mine"])
    assert o == {"training.epochs": 5, "training.batch_size": 16, "run.name": "mine"}


def test_report_config_takes_sets_as_strings_or_a_mapping(project):
    a = report.report_config("cfg.yaml", profile="profiles/tiny.yaml", sets=["training.lr=0.01"])
    b = report.report_config("cfg.yaml", profile="profiles/tiny.yaml", sets={"training.lr": 0.01})
    assert a == b and a.training.epochs == 2 and a.training.lr == 0.01
    assert report.report_config("cfg.yaml").training.epochs == 5


def test_report_config_rejects_an_unknown_key(project):
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        report.report_config("cfg.yaml", sets=["training.epoch=3"])


def test_every_shipped_profile_gives_notebook_parameters():
    for profile in sorted((REPO / "profiles").glob("*.yaml")):
        params = report.report_parameters(args(config=str(REPO / "cfg.yaml"), profile=str(profile)), False)
        assert params["profile"] == str(profile) and params["overrides"]["run.device"] == "cpu"


# --- device and kernel --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "cuda", "expected"), [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda:1", True, "cuda:1"),
])
def test_choose_device(configured, cuda, expected):
    assert report.choose_device(configured, cuda) == expected


def test_report_parameters_carry_data_sets_and_the_device(project):
    p = report.report_parameters(args(data="d.zip", profile="profiles/tiny.yaml", set=["run.name=x"]), True)
    assert p == {"config": "cfg.yaml", "profile": "profiles/tiny.yaml", "drop_missing_eval_sets": False,
                 "overrides": {"data.source": "d.zip", "run.name": "x", "run.device": "cuda"}}


def test_report_parameters_keep_a_device_the_user_chose(project):
    p = report.report_parameters(args(set=["run.device=cpu"]), cuda_available=True)
    assert p["overrides"]["run.device"] == "cpu"


def test_report_parameters_validate_before_anything_runs(project):
    with pytest.raises(ConfigError, match="training.batch_size"):
        report.report_parameters(args(set=["training.batch_size=0"]), False)


def test_report_parameters_fall_back_to_defaults_without_cfg_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report.report_parameters(args(), False)["config"] is None


def test_kernel_installed_checks_the_spec_its_python_and_the_quiet_flag(tmp_path):
    spec = tmp_path / "share" / "jupyter" / "kernels" / "plate_lib" / "kernel.json"
    assert not report.kernel_installed(tmp_path, "plate_lib", "/venv/bin/python")
    write(spec, json.dumps({"argv": ["/other/python", "-m", "ipykernel_launcher", report.QUIET_KERNEL]}))
    assert not report.kernel_installed(tmp_path, "plate_lib", "/venv/bin/python")
    write(spec, json.dumps({"argv": ["/venv/bin/python", "-m", "ipykernel_launcher"]}))
    assert not report.kernel_installed(tmp_path, "plate_lib", "/venv/bin/python")
    write(spec, json.dumps({"argv": ["/venv/bin/python", "-m", "ipykernel_launcher", report.QUIET_KERNEL]}))
    assert report.kernel_installed(tmp_path, "plate_lib", "/venv/bin/python")
    write(spec, "{not json")
    assert not report.kernel_installed(tmp_path, "plate_lib", "/venv/bin/python")


def test_ensure_kernel_installs_into_the_environment_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake_install(cmd, **kw):  # what `ipykernel install --sys-prefix` writes
        calls.append(cmd)
        write(tmp_path / "share" / "jupyter" / "kernels" / "plate_lib" / "kernel.json",
              json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]}))

    monkeypatch.setattr(report.sys, "prefix", str(tmp_path))
    monkeypatch.setattr(report.subprocess, "run", fake_install)
    report.ensure_kernel()
    assert calls == [[sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "plate_lib",
                      "--display-name", "Python (plate_lib)"]]
    assert report.kernel_installed(tmp_path, "plate_lib")  # with the quiet flag added
    report.ensure_kernel()
    assert len(calls) == 1


# --- notebook setup -----------------------------------------------------------------------------------------


def test_find_root_walks_up_to_cfg_yaml(project):
    (project / "notebooks").mkdir()
    assert report.find_root(project / "notebooks") == project
    with pytest.raises(FileNotFoundError, match="no cfg.yaml"):
        report.find_root(project.parent)


def test_setup_notebook_chdirs_to_the_root_and_drops_missing_eval_sets(project, monkeypatch):
    monkeypatch.setattr(report, "quiet_outputs", lambda: None)  # leave pytest's logging and warnings alone
    (project / "notebooks").mkdir()
    (project / "real").mkdir()
    monkeypatch.chdir(project / "notebooks")
    o = {"run.name": "smoke", "data.eval_sets": ["real", "../shared/absent"]}
    cfg = report.setup_notebook("cfg.yaml", "profiles/tiny.yaml", o, drop_missing_eval_sets=True)
    assert Path.cwd() == project
    assert cfg.data.eval_sets == ["real"] and cfg.run.name == "smoke" and cfg.training.epochs == 2
    assert report.setup_notebook("cfg.yaml", None, o).data.eval_sets == ["real", "../shared/absent"]


def test_setup_notebook_puts_a_cjk_font_first(project, monkeypatch):
    from matplotlib import font_manager, rcParams
    from matplotlib.ft2font import FT2Font

    monkeypatch.setattr(report, "quiet_outputs", lambda: None)
    report.setup_notebook("cfg.yaml")
    name = rcParams["font.sans-serif"][0]
    path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
    assert FT2Font(path).get_char_index(ord("皖")) != 0  # 皖 has a glyph: no empty boxes


def test_photo_grids_display_as_jpeg_and_plots_as_png():
    import types

    import numpy as np
    from IPython.core.formatters import DisplayFormatter

    from plate_lib import plots

    shell = types.SimpleNamespace(display_formatter=DisplayFormatter())
    plots.register_formats(shell)
    png, jpeg = (shell.display_formatter.formatters[m] for m in ("image/png", "image/jpeg"))
    grid = plots.image_grid([np.zeros((20, 60, 3), np.uint8)], ["皖A12345"])
    bars = plots.count_bars(pd.Series({"皖": 3, "苏": 1}), "plates per province")
    assert png.lookup(grid)(grid) is None and jpeg.lookup(grid)(grid)[:2] == b"\xff\xd8"
    assert png.lookup(bars)(bars)[:4] == b"\x89PNG" and jpeg.lookup(bars)(bars) is None


# --- run artefacts ------------------------------------------------------------------------------------------


def test_write_eval_writes_json_summaries_and_csv_rows(tmp_path):
    rows = pd.DataFrame({"name": ["a.jpg"], "true": ["皖A12345"], "pred": ["皖A12345"]})
    results = {"test": ({"n": 1, "word_acc": 1.0, "province_acc_non_wan": float("nan")}, rows),
               "../shared/data/ccpd2019-sample": ({"n": 1, "word_acc": 0.0}, rows)}
    path = report.write_eval(tmp_path, results, tmp_path / "best.pt")
    ev = json.loads(path.read_text(encoding="utf-8"))
    assert list(ev["sets"]) == ["test", "../shared/data/ccpd2019-sample"]
    assert ev["sets"]["test"] == {"n": 1, "word_acc": 1.0, "province_acc_non_wan": None}  # NaN is not JSON
    assert (tmp_path / "eval-test.csv").is_file() and (tmp_path / "eval-ccpd2019-sample.csv").is_file()
    other = {"test": results["test"], "/data/dl1/test": ({"n": 1}, rows.assign(pred="皖A00000"))}
    (tmp_path / "o").mkdir()
    report.write_eval(tmp_path / "o", other, tmp_path / "best.pt")
    assert sorted(p.name for p in (tmp_path / "o").glob("*.csv")) == ["eval-dl1_test.csv", "eval-test.csv"]
    assert pd.read_csv(tmp_path / "o" / "eval-test.csv")["pred"].tolist() == ["皖A12345"]  # not the eval set's rows


def test_run_files_and_key_settings(project):
    run = project / "runs" / "r"
    write(run / "best.pt", "x" * 2048)
    write(run / "summary.json", json.dumps({"params": 123, "steps": 9, "best_val_word_acc": 0.123456}))
    write(run / "eval-test.csv", "stale")
    assert report.run_files(run).index.tolist() == [str(run / "best.pt"), str(run / "summary.json")]
    settings = report.key_settings(report.report_config("cfg.yaml"), run)["value"]
    assert settings["parameters"] == "123" and settings["epochs"] == "5" and settings["optimiser steps"] == "9"
    assert settings["best val word acc"] == "0.1235"


def test_clean_notebook_keeps_tags_and_jupytext_and_drops_timing():
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"duration": 3}, "kernelspec": {"name": "plate_lib", "display_name": "x"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"], "papermill": {}}),
                nbformat.v4.new_code_cell("x", metadata={"execution": {"iopub.status.busy": "2024-01-01"}})]
    clean = report.clean_notebook(nb)
    assert clean.metadata["kernelspec"]["name"] == "python3" and "papermill" not in clean.metadata
    assert clean.metadata["jupytext"] == {"formats": "ipynb,py:percent"}
    assert clean.cells[0].metadata == {"tags": ["parameters"]} and clean.cells[1].metadata == {}


# --- run_report with the notebooks stubbed ------------------------------------------------------------------


@pytest.fixture
def stubbed(project, monkeypatch):
    """run_report's collaborators replaced: no kernel install, no papermill, no HTML conversion."""
    ran = []
    monkeypatch.setattr(report, "ensure_kernel", lambda: None)
    monkeypatch.setattr(report, "export_html", lambda nb, html: html)
    monkeypatch.setattr(report, "run_notebook", lambda name, root, out, params: ran.append((name, params)))
    return ran


def test_run_report_runs_the_notebooks_in_order_and_prints_the_test_accuracy(stubbed, project, capsys):
    write(project / "runs" / "x" / "eval.json", json.dumps({"sets": {"test": {"n": 200, "word_acc": 0.875}}}))
    assert report.run_report(args(set=["run.name=x"], profile="profiles/tiny.yaml")) == 0
    assert [name for name, _ in stubbed] == list(report.NOTEBOOKS)
    assert stubbed[0][1]["overrides"]["run.name"] == "x" and stubbed[0][1]["profile"] == "profiles/tiny.yaml"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "word accuracy 0.8750 on 200 test plates" in out[0] and "reports" in out[0]


def test_run_report_names_the_failing_notebook_and_cell(stubbed, project, monkeypatch, capsys):
    from papermill.exceptions import PapermillExecutionError

    def fail(name, root, out, params):
        if name == "02_train":
            raise PapermillExecutionError(4, 3, "# train\nrun = fit(cfg)", "ValueError", "bad data", [])

    monkeypatch.setattr(report, "run_notebook", fail)
    assert report.run_report(args()) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("report: reports/02_train.ipynb failed in cell 4 (In [3]: run = fit(cfg)): "
                   "ValueError: bad data")

