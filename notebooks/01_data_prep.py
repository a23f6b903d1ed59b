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
from plate_lib import analysis, plots, report

cfg = report.setup_notebook(config, profile, overrides, drop_missing_eval_sets)

# %% [markdown]
# # 01 · Data preparation
# The dataset `data.source` names (the synthetic generator by default, else a CCPD2019-dl1 zip, a crops folder
# or a CCPD2019 photo folder): what it holds, how plates and crops look, and what the augmentations do to them.

# %%
source = analysis.open_dataset(cfg)  # a synthetic zip is generated on first use
print(f"{source!r}: {source.kind}, data.source = {cfg.data.source}")

# %% [markdown]
# ## Plates per split
# Validation is a fixed share of `train/` chosen by a hash of the file name (`data.val_fraction`).

# %%
# NBVAL_CHECK_OUTPUT
analysis.split_counts(source).round(3)

# %% [markdown]
# Files in no split, counted (the log names them): images a label list leaves out, CCPD2019's photos without a plate.

# %%
analysis.not_read(source)

# %% [markdown]
# ## Provinces
# CCPD was photographed in Anhui: 皖 dominates (log scale).

# %%
texts = [r.text for r in source.records("all") if not r.error]
plots.count_bars(analysis.province_counts(texts), f"车牌省份 · plates per province ({len(texts)} plates)", "province")

# %% [markdown]
# ## Raw crop sizes
# Before the letterbox to the model's input size; a sample of the training crops.

# %%
sizes = analysis.crop_sizes(source, analysis.sample_records(source, "train", 2000, cfg.run.seed, cfg.data.skip_bad))
sizes[["width", "height"]].describe().round(1).T

# %%
plots.size_histograms(sizes, f"raw crop sizes ({len(sizes)} training crops)")

# %% [markdown]
# ## Sample crops with their labels

# %%
samples = analysis.sample_records(source, "train", 16, cfg.run.seed + 1, cfg.data.skip_bad)
plots.image_grid(analysis.load_crops(source, [r.name for r in samples]), [r.text for r in samples],
                 title="training crops, raw")

# %% [markdown]
# ## Augmentations
# Each row: one plate as the model sees it (letterboxed to `preprocess`), then independent draws of
# `augment_batch` with the `augment` settings.

# %%
crops = analysis.load_crops(source, [r.name for r in samples[:4]])
plots.augment_grid(analysis.augment_draws(analysis.letterboxed(crops, cfg.preprocess), cfg.augment, 5, cfg.run.seed),
                   [r.text for r in samples[:4]])

# %% [markdown]
# ## Real and synthetic plates
# When `data.eval_sets` names a CCPD2019 photo folder: real crops (cut out with the annotated corners) beside
# synthetic renderings of the same plate numbers.

# %%
real, titles = analysis.real_and_synthetic(cfg, n=6, seed=cfg.run.seed)
plots.image_grid(real, titles, ncols=4, title="real CCPD crops and synthetic renderings",
                 empty="no CCPD2019 photo folder in data.eval_sets")
