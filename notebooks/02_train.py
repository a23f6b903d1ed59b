# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
# Parameters: papermill (make report) replaces them; these are the smoke run the committed outputs show.
# The full run instead: profile = None and overrides = {} (cfg.yaml as it is, into runs/default/). Your own
# data: "data.source": "/path/to/CCPD2019-dl1.zip" (or a folder of crops or CCPD2019 photos) in overrides.
# Then Run → Run All Cells: 02_train reuses a finished run of the same config, code and data.
config = "cfg.yaml"  # the config file, relative to the project root
profile = "profiles/smoke.yaml"  # dotted-key overrides applied after the config (None: none)
overrides = {"run.name": "smoke", "run.device": "cpu", "data.eval_sets": ["../shared/data/ccpd2019-sample"]}
drop_missing_eval_sets = True  # smoke runs skip eval sets this machine lacks (a clone without ../shared)

# %%
import pandas as pd

from plate_lib import plots, report

cfg = report.setup_notebook(config, profile, overrides, drop_missing_eval_sets)

# %% [markdown]
# # 02 · Training
# `train.fit` as configured: the best checkpoint by validation word accuracy, the last one, and one
# `metrics.csv` row per epoch go to `<training.out_dir>/<run.name>/`.

# %%
from plate_lib.train import fit

# progress bars in JupyterLab, none in the saved report; a finished run of the same config, code and data
# is reused rather than trained again
run = fit(cfg, progress=report.interactive(), reuse=True)

# %% [markdown]
# ## The run's settings

# %%
report.key_settings(cfg, run)

# %% [markdown]
# ## Curves

# %%
m = pd.read_csv(run / "metrics.csv").merge(pd.read_csv(run / "timings.csv"), on="epoch")
plots.training_curves(m)

# %%
m

# %%
# NBVAL_CHECK_OUTPUT
m[["epoch", "step", "val_word_acc", "val_char_acc", "val_province_acc"]].round(3)

# %% [markdown]
# ## Where the checkpoint went
# `best.pt` carries the weights, the resolved config and the alphabet: `inference.load_model` rebuilds the
# model from it alone.

# %%
report.run_files(run)
