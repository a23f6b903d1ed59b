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
from IPython.display import display

from plate_lib import analysis, peers, plots, report, robustness
from plate_lib.inference import pick_device

cfg = report.setup_notebook(config, profile, overrides, drop_missing_eval_sets)

# %% [markdown]
# # 03 · Error analysis
# The best checkpoint of the run, evaluated on the test split and on every `data.eval_sets` entry; the
# summaries go to `<run>/eval.json` (read by `make report`), the per-plate rows to `<run>/eval-<set>.csv`.

# %%
run = report.run_dir(cfg)
results = analysis.evaluate_sets(cfg, run / "best.pt", str(pick_device(cfg.run.device)))
print("summaries in", report.write_eval(run, results, run / "best.pt"))

# %% [markdown]
# ## Summary
# Word accuracy (whole plate right), the seed's position-wise character accuracy, CER (Levenshtein distance over
# true characters), province accuracy overall and on plates not from 皖. The seed notebook's column is what
# it reported on the 9,999 CCPD2019-dl1 test crops.

# %%
# NBVAL_CHECK_OUTPUT
print({k: round(v, 3) for k, v in results["test"][0].items()})

# %%
analysis.summary_table({k: s for k, (s, _) in results.items()}).round(3)

# %% [markdown]
# ## Test split: which characters go wrong
# Province confusions (true → predicted), most frequent first.

# %%
test_rows, test_source = results["test"][1], analysis.eval_source(cfg, "test")
analysis.province_confusions(test_rows).head(15)

# %% [markdown]
# Symbol confusions after the province, from a Levenshtein alignment of truth and prediction (so a dropped
# character counts once instead of shifting every later one); `∅` marks a missing or an extra character.

# %%
analysis.symbol_confusions(test_rows).head(20)

# %% [markdown]
# ## Wrong characters per plate
# Position-wise (as the seed counted them, 0 to 8) and by Levenshtein distance, beside the seed's test counts.

# %%
errors = analysis.error_table(test_rows)
errors.T

# %%
plots.error_histogram(errors)

# %% [markdown]
# ## Plates with 3 or more wrong characters
# Up to 8 test crops (raw, before the letterbox) per number of position-wise errors.

# %%
for k, rows in analysis.error_galleries(test_rows, min_errors=3, per_count=8).items():
    display(plots.plate_gallery(test_source, rows, f"{k} wrong characters"))

# %% [markdown]
# ## Accuracy per province
# The last row pools every plate not from 皖.

# %%
analysis.province_accuracy(test_rows).round(3)

# %% [markdown]
# ## Confidence
# Confidence is the province probability times the best CTC path's probability. The least confident correct
# plates and the most confident wrong ones:

# %%
plots.plate_gallery(test_source, analysis.least_confident_correct(test_rows), "least confident correct",
                    confidence=True)

# %%
plots.plate_gallery(test_source, analysis.most_confident_wrong(test_rows), "most confident wrong", confidence=True)

# %% [markdown]
# ## Evaluation sets
# Metrics per CCPD sub-dataset (`ccpd_base`, `ccpd_green`, …) for the eval sets that are CCPD photo folders,
# and their most confident mistakes.

# %%
analysis.subset_tables(results).round(3)

# %%
for name in cfg.data.eval_sets:
    display(plots.plate_gallery(analysis.eval_source(cfg, name), analysis.most_confident_wrong(results[name][1]),
                                f"{name}: most confident wrong", confidence=True))

# %% [markdown]
# ## By plate colour
# Blue, yellow and green plates apart, on the test split and every eval set: green by its 8 characters, blue or
# yellow by the crop's hue, as `plate predict`'s `kind` calls them (`unknown`: no colour to tell, as at night).

# %%
analysis.colour_tables(cfg, results)[["n", "word_acc", "char_acc", "province_acc"]].round(3)

# %% [markdown]
# ## Where this model breaks
# Word accuracy on each eval set's test split, clean and under one degradation at a time at growing strength:
# crop height, JPEG quality, rotation, tilt, darkening, over-exposure, glare, motion blur, defocus, and the crop
# margin (from cutting 8 % of the plate off every side to 75 % of loose border). On CCPD photos the margin and
# the rotation take the real surroundings (a loose crop holds the car around the plate; a turned plate is cut at
# its box from the turned photo); crops without a photo repeat their edges. `plate_lib.robustness`;
# `benchmarks/robustness.py` draws the same for the shipped model.

# %%
breaks = robustness.eval_set_curves(cfg, run / "best.pt")
plots.robustness_curves(breaks) if len(breaks) else print("no eval set: nothing to degrade")

# %% [markdown]
# ## Read by a peer, missed here; labels to check
# The eval-set plates this model got wrong that HyperLPR (alone or after its refinement) or LPRNet reads right,
# each peer run as its own code runs it (`plate_lib.peers`; `make peers` installs them and compares all of them
# on held-out real sets, see the README). Skipped, with a note, where the peers are not installed. Then the
# labels to check: misses that this model and a peer, or two peers, read as the same other plate. There the
# label is often what is wrong; correct it beside the data (`data.label_fixes`) after looking at the crop.

# %%
for name in cfg.data.eval_sets:
    source = analysis.eval_source(cfg, name)
    misses, absent = analysis.peer_misses(source, results[name][1])
    display(plots.peer_gallery(source, analysis.read_by_a_peer(misses), absent, f"{name}: read by a peer, missed here"))
    checks = analysis.labels_to_check(misses)
    display(checks) if len(checks) else print(f"{name}: no label that readers agree against"
                                              + (" (no peer installed)" if len(absent) == len(peers.PEERS) else ""))
