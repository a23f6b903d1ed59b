# plate_lib: `make report` and `make test` are all a fresh machine needs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PLATE  := $(VENV)/bin/plate
STAMP  := $(VENV)/.installed

CONFIG  ?= cfg.yaml
DATA    ?=
PROFILE ?=
SET     ?=
LAB_PORT ?=
LOCK    ?= constraints.txt

.PHONY: help setup report lab model test lint clean bench accuracy peers lock

help: ## Show the targets
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(wildcard $(LOCK))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install -q $(if $(wildcard $(LOCK)),-c $(LOCK)) -e '.[report,export,dev]' 2>&1 | grep -v "is ignored: it is neither" ; test $${PIPESTATUS[0]} -eq 0
	@touch $@

setup: $(STAMP) ## Create .venv (PYTHON=python3.11) and install plate_lib and its extras at constraints.txt's versions (LOCK= : the newest)

lock: $(STAMP) ## Write constraints.txt from .venv's versions (after an upgrade that passed make test and make report)
	@{ sed -n '/^#/p' constraints.txt 2>/dev/null; \
	  $(PY) -m pip freeze --exclude-editable --all | grep -v -e '^pip==' -e '^setuptools==' -e '^wheel==' -e '^plate.lib'; } \
	  > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt
	@echo "constraints.txt: $$(grep -c == constraints.txt) packages"

# The real CCPD sample beside the repo (development machines, CI) is evaluated too when it is there.
SAMPLE := $(wildcard ../shared/data/ccpd2019-sample)
DEV := $(wildcard ../shared/data/real-crops-lyl8213)
comma := ,

report: $(STAMP) ## Run notebooks 01-03 with papermill into reports/ (+ HTML); DATA=… PROFILE=… SET="k=v …"
	$(PY) -m plate_lib report --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(PROFILE),--profile $(PROFILE)) \
		$(if $(SAMPLE)$(DEV),--set data.eval_sets=[$(subst $(eval) ,$(comma),$(strip $(SAMPLE) $(DEV)))]) \
		$(foreach s,$(SET),--set $(s))

# JupyterLab on the project root, file browser in notebooks/, the plate_lib kernel (installed as for the report);
# without a display no browser opens and the URL with its token is printed.
lab: $(STAMP) ## Explore the notebooks in JupyterLab on the plate_lib kernel; LAB_PORT=… picks the port
	$(PY) -m plate_lib.lab $(if $(LAB_PORT),--port $(LAB_PORT))

# The shipped model: stage 1 on synthetic plates (profiles/model.yaml); where the real data is present beside the
# repository, stage 2 fine-tunes on the train splits of the CCPD sample (corners and bounding-box crops) and of
# real-crops-lyl8213, choosing on their val splits (profiles/model-finetune.yaml; lyl8213's wrong labels corrected), and
# the shipped model is the mean of stage 2's four epochs' weights (plate average; docs/experiments.md, "Weight averaging").
# Every stage is read on every real set (benchmarks/real_sets.py; the shipped one's test splits against lyl8213's
# labels as published and as corrected) and on the balanced synthetic test split; the JSON goes to models/.
REAL := $(and $(SAMPLE),$(DEV))
MODEL_OUT := models/plate_default.pt
MODEL_RUN := runs/$(if $(REAL),model-finetune,model-synthetic)
SHIP := $(MODEL_RUN)/$(if $(REAL),average.pt,best.pt)
READ_REAL = $(PY) benchmarks/real_sets.py --json
READ_SYNTHETIC = $(PLATE) evaluate --quiet --data data/synthetic-model.zip --split test

model: $(STAMP) ## Train the shipped model into models/plate_default.pt (recipe: profiles/model*.yaml)
	$(PLATE) train --quiet --config $(CONFIG) --profile profiles/model.yaml
	$(READ_SYNTHETIC) --checkpoint runs/model-synthetic/best.pt > models/eval-synthetic-only-synthetic-test.json
ifneq ($(REAL),)
	$(READ_REAL) runs/model-synthetic/best.pt --splits all > models/eval-synthetic-only.json
	$(PLATE) train --quiet --config $(CONFIG) --profile profiles/model.yaml --profile profiles/model-finetune.yaml \
		--set data.source=$(SAMPLE)
	$(PLATE) average $$(ls $(MODEL_RUN)/epoch[0-9]*.pt | sort -V) --out $(SHIP)  # every epoch kept, epoch10 after epoch9
	$(READ_SYNTHETIC) --checkpoint $(SHIP) > models/eval-shipped-synthetic-test.json
	$(READ_REAL) $(SHIP) --splits test > models/eval-shipped-test.json
	$(READ_REAL) $(SHIP) --splits test --fixed-labels > models/eval-shipped-test-fixed-labels.json
	$(READ_REAL) $(SHIP) --splits train val --fixed-labels > models/eval-shipped-trained-on.json
endif
	cp $(SHIP) $(MODEL_OUT).tmp && mv $(MODEL_OUT).tmp $(MODEL_OUT)
	@echo "wrote $(MODEL_OUT) ($$(du -k $(MODEL_OUT) | cut -f1) KB) from $(SHIP)"

test: $(STAMP) ## Run the test suite (pytest)
	$(PY) -m pytest -q

lint: $(STAMP) ## Check style with ruff
	$(VENV)/bin/ruff check plate_lib tests benchmarks

bench: $(STAMP) ## Measure throughput of the models (benchmarks/results.json) and the generator
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/bench_synth.py

accuracy: $(STAMP) ## Train seed_crnn and the compact models on the same data; compare (benchmarks/accuracy.json)
	$(PY) benchmarks/accuracy.py --reuse --repeats small_crnn=3 small_crnn_lite=3

# The peers (HyperLPR, LPRNet) run in an environment of their own: HyperLPR needs OpenCV 4, plate_lib has 5.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed: benchmarks/requirements-peers.txt
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q -r benchmarks/requirements-peers.txt 2>&1 | grep -v "is ignored: it is neither" ; test $${PIPESTATUS[0]} -eq 0
	@touch $@

peers: $(STAMP) $(PEERS_VENV)/.installed ## Compare the shipped model with HyperLPR and LPRNet on real plates (benchmarks/peers.json)
	$(PY) benchmarks/peers.py

clean: ## Remove generated data, runs, reports and caches (keeps .venv)
	rm -rf data/cache data/synthetic*.zip runs reports .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
