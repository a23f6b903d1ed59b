"""Report: the job behind ``make report``: run the notebooks 01 → 02 → 03 with papermill into ``reports/``,
convert each to self-contained HTML and end with a one-line summary.

Overrides come from a profile (a YAML file of dotted keys, e.g. ``profiles/gpu.yaml``), then ``--data`` and
``--set``, through the same validation as ``cfg.yaml``. The notebooks receive them as papermill parameters
(``config``, ``profile``, ``overrides``) and build their config with ``setup_notebook``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import config as config_mod

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_data_prep", "02_train", "03_error_analysis")
KERNEL = "plate_lib"
ROOT_MARKER = "cfg.yaml"


# --- config: profile, data, --set --------------------------------------------------------------------------


def report_config(config: str | None, data: str | None = None, profile: str | list[str] | None = None,
                  sets: list[str] | Mapping[str, Any] | None = None) -> config_mod.Config:
    return config_mod.load(config, config_mod.collect_overrides(data, profile, sets))


def run_dir(cfg: config_mod.Config) -> Path:
    return Path(cfg.training.out_dir) / cfg.run.name


# --- inside the notebooks ----------------------------------------------------------------------------------


def find_root(start: str | Path = ".") -> Path:
    """The nearest folder at or above ``start`` holding cfg.yaml (the project root)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT_MARKER).is_file():
            return folder
    raise FileNotFoundError(f"no {ROOT_MARKER} in {here} or above; run the notebook inside the project")


def quiet_outputs() -> None:
    """No warnings, no progress bars, log lines on stdout without timestamps: clean saved notebooks."""
    os.environ["TQDM_DISABLE"] = "1"  # bars created without an explicit disable= (read when tqdm is imported)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("plate_lib").setLevel(logging.INFO)


SESSION_ENV = "JPY_SESSION_NAME"  # set by a Jupyter server for the kernel of a notebook open in it


def interactive() -> bool:
    """Whether this kernel runs a notebook open in JupyterLab (or another Jupyter server front end), where a
    person watches: there the notebooks show progress bars. papermill (``make report``), nbval and ``refresh``
    start their kernels without a server, so the saved notebooks hold no bars."""
    return bool(os.environ.get(SESSION_ENV))


def setup_notebook(config: str | None = "cfg.yaml", profile: str | list[str] | None = None,
                   overrides: Mapping[str, Any] | None = None, drop_missing_eval_sets: bool = False
                   ) -> config_mod.Config:
    """A notebook's second cell: chdir to the project root, quiet outputs, CJK font, tables; returns the config.

    ``drop_missing_eval_sets`` (the smoke parameters) drops ``data.eval_sets`` entries that are not on this
    machine, so the committed notebooks run in a clone without ``../shared``.
    """
    os.chdir(find_root())
    quiet_outputs()
    from IPython import get_ipython

    from .plots import register_formats, use_cjk_font

    if get_ipython() is not None:  # figures returned by a cell are shown: plots as PNG, photo grids as JPEG
        get_ipython().run_line_magic("matplotlib", "inline")
        register_formats(get_ipython())

    use_cjk_font()
    pd.set_option("display.max_rows", 40)
    pd.set_option("display.float_format", "{:.4g}".format)
    cfg = report_config(config, profile=profile, sets=dict(overrides or {}))
    if drop_missing_eval_sets:
        present = [p for p in cfg.data.eval_sets if Path(p).exists()]
        if present != cfg.data.eval_sets:
            log.info("eval sets not on this machine, skipped: %s", sorted(set(cfg.data.eval_sets) - set(present)))
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eval_sets": present})})
    return cfg


def key_settings(cfg: config_mod.Config, run: Path) -> pd.DataFrame:
    """The numbers that define a run, one per row: data, model, input, schedule, and what fit reported."""
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8")) if (run / "summary.json").is_file() else {}
    rows = {
        "data.source": cfg.data.source, "model": cfg.model.name, "parameters": summary.get("params"),
        "input (h×w×c)": f"{cfg.preprocess.height}×{cfg.preprocess.width}×{cfg.preprocess.channels}",
        "epochs": cfg.training.epochs, "optimiser steps": summary.get("steps"), "batch size": cfg.training.batch_size,
        "peak lr": cfg.training.lr, "augment": cfg.augment.enabled, "device": cfg.run.device, "seed": cfg.run.seed,
        "best val word acc": summary.get("best_val_word_acc"), "run folder": str(run),
    }
    return pd.DataFrame({"value": [f"{v:.4g}" if isinstance(v, float) else str(v) for v in rows.values()]},
                        index=list(rows))


FIT_FILES = ("best.pt", "last.pt", "metrics.csv", "timings.csv", "train.log", "summary.json", "config.yaml", "env.json")


def run_files(run: Path) -> pd.DataFrame:
    """The files ``train.fit`` leaves in a run folder, with their sizes in KB."""
    files = [run / f for f in FIT_FILES if (run / f).is_file()]
    return pd.DataFrame({"KB": [round(p.stat().st_size / 1024, 1) for p in files]}, index=[str(p) for p in files])


def _json_safe(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def write_eval(run: Path, results: Mapping[str, tuple[Mapping[str, Any], pd.DataFrame]], checkpoint: str | Path) -> Path:
    """``<run>/eval.json`` (the checkpoint and each set's summary, ``test`` first) and ``eval-<set>.csv`` rows, a
    set named by its ``analysis.set_labels`` label (``/`` as ``_``: ``eval-dl1_test.csv`` for an eval set ``…/dl1/test``)."""
    from .analysis import set_labels

    out = {"checkpoint": str(checkpoint), "sets": {k: _json_safe(s) for k, (s, _) in results.items()}}
    label = set_labels(list(results))
    for name, (_, rows) in results.items():
        rows.to_csv(run / f"eval-{label[name].replace('/', '_')}.csv", index=False)
    path = run / "eval.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


# --- running the notebooks ---------------------------------------------------------------------------------


def choose_device(configured: str, cuda_available: bool) -> str:
    """``run.device`` for the report: what the config names, or for ``auto`` cuda when it answers, else cpu."""
    if configured != "auto":
        return configured
    return "cuda" if cuda_available else "cpu"


def report_parameters(args: argparse.Namespace, cuda_available: bool) -> dict[str, Any]:
    """The papermill parameters for every notebook (validated by building the config first)."""
    config = config_mod.config_file(args.config)
    overrides = config_mod.collect_overrides(args.data, None, args.set)
    cfg = report_config(config, profile=args.profile, sets=overrides)
    overrides["run.device"] = choose_device(cfg.run.device, cuda_available)
    return {"config": config, "profile": args.profile, "overrides": overrides, "drop_missing_eval_sets": False}


QUIET_KERNEL = "--IPKernelApp.log_level=ERROR"  # no "Kernel is running over TCP without encryption" per notebook


def kernel_installed(prefix: str | Path, name: str = KERNEL, executable: str = sys.executable) -> bool:
    """Whether ``<prefix>/share/jupyter/kernels/<name>`` exists, runs ``executable`` and logs errors only."""
    spec = Path(prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    try:
        argv = json.loads(spec.read_text(encoding="utf-8"))["argv"]
        return argv[0] == executable and QUIET_KERNEL in argv
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def ensure_kernel(name: str = KERNEL) -> None:
    """Install the Jupyter kernel ``name`` into this environment (``--sys-prefix``) unless it is there."""
    if kernel_installed(sys.prefix, name):
        return
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                    "--display-name", f"Python ({name})"], check=True, capture_output=True)
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    kernel = json.loads(spec.read_text(encoding="utf-8"))
    kernel["argv"].append(QUIET_KERNEL)
    spec.write_text(json.dumps(kernel, indent=1), encoding="utf-8")


def export_html(notebook: Path, html: Path) -> Path:
    """The executed notebook as one HTML file that needs no network: figures are embedded as base64 PNG."""
    from nbconvert import HTMLExporter

    quiet = logging.getLogger("plate_lib.report.html")
    quiet.setLevel(logging.ERROR)  # not "Alternative text is missing on N image(s)" for every figure
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, log=quiet)
    body, _ = exporter.from_filename(str(notebook))
    body = re.sub(r'<script src="https?://[^"]*">\s*</script>', "", body)  # require.js, MathJax: unused, online
    html.write_text(body, encoding="utf-8")
    return html


def run_notebook(name: str, root: Path, out_dir: Path, parameters: dict[str, Any]) -> Path:
    """Execute ``notebooks/<name>.ipynb`` into ``<out_dir>/<name>.ipynb`` (raises PapermillExecutionError)."""
    import papermill

    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(root / "notebooks" / f"{name}.ipynb", out, parameters=parameters,
                               kernel_name=KERNEL, cwd=str(root), progress_bar=False, log_output=False)
    return out


def failure_line(out: Path, err: Any) -> str:
    """One line naming the notebook and the cell that failed (a papermill ``PapermillExecutionError``)."""
    first = next((ln for ln in str(err.source).splitlines() if ln.strip() and not ln.startswith("#")), "")
    return (f"report: {out} failed in cell {err.cell_index} (In [{err.exec_count}]: {first.strip()[:80]}): "
            f"{err.ename}: {err.evalue}")


def run_report(args: argparse.Namespace) -> int:
    import torch
    from papermill.exceptions import PapermillExecutionError

    logging.getLogger("papermill").setLevel(logging.WARNING)  # its per-notebook INFO lines
    os.environ.pop(SESSION_ENV, None)  # run from a notebook's kernel: its papermill kernels are no Lab sessions
    root = find_root()
    os.chdir(root)
    params = report_parameters(args, torch.cuda.is_available())
    cfg = report_config(params["config"], profile=args.profile, sets=params["overrides"])
    out_dir = root / "reports"
    out_dir.mkdir(exist_ok=True)
    for stale in (out_dir / f"{name}.{ext}" for name in NOTEBOOKS for ext in ("ipynb", "html")):
        stale.unlink(missing_ok=True)  # a failed run leaves no older report looking current
    ensure_kernel()
    for name in NOTEBOOKS:
        t0 = time.perf_counter()
        out = out_dir / f"{name}.ipynb"
        try:
            run_notebook(name, root, out_dir, params)
        except PapermillExecutionError as err:
            export_html(out, out.with_suffix(".html"))
            print(failure_line(out.relative_to(root), err), file=sys.stderr)
            return 1
        html = export_html(out, out.with_suffix(".html"))
        if not args.quiet:
            print(f"report: {name} done in {time.perf_counter() - t0:.0f} s → {html.relative_to(root)}", flush=True)
    ev = json.loads((run_dir(cfg) / "eval.json").read_text(encoding="utf-8"))
    test = ev["sets"]["test"]
    print(f"report: word accuracy {test['word_acc']:.4f} on {test['n']} test plates ({cfg.data.source}); "
          f"HTML in {out_dir.relative_to(root)}/ (03_error_analysis.html); run folder {run_dir(cfg)}")
    return 0


# --- the committed notebooks -------------------------------------------------------------------------------


def clean_notebook(nb: Any) -> Any:
    """Drop execution timestamps and papermill/nbclient metadata; kernelspec python3; keep tags and jupytext."""
    nb.metadata = {
        "jupytext": {"formats": "ipynb,py:percent"},
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
    return nb


def refresh_notebooks(root: Path | None = None) -> None:
    """Re-execute ``notebooks/*.ipynb`` in place with their smoke parameters (as nbval runs them) and clean them."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    root = root or find_root()
    os.environ.pop(SESSION_ENV, None)  # the kernels below: no progress bars, even when started from JupyterLab
    for name in NOTEBOOKS:
        path = root / "notebooks" / f"{name}.ipynb"
        # take edits made to the .py pair (jupytext's paired sync: the newer file wins)
        subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(path)], check=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name="python3", record_timing=False, timeout=600,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(clean_notebook(nb), path)
        jupytext.write(nb, path.with_suffix(".py"), fmt="py:percent")  # the pair, rewritten after the .ipynb
        print(f"refreshed {path.relative_to(root)}")


if __name__ == "__main__":  # python -m plate_lib.report refresh: re-run the committed notebooks' smoke outputs
    if sys.argv[1:] != ["refresh"]:
        sys.exit("usage: python -m plate_lib.report refresh")
    refresh_notebooks()
