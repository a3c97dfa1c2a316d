# keras-unets: every target installs what it needs (via the venv target),
# so any of them works as the first command after `git clone`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYTEST_WORKERS ?= 2

.PHONY: venv test test-slow bench clean reproduce reproduce-unet reproduce-unetpp reproduce-unet3p reproduce-holdout notebooks notebooks-execute

venv: $(STAMP)

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" tests

test-slow: venv
	$(PY) -m pytest -q -m slow tests

# The report's experiments (keras_unets/report/). PROFILE=quick|paper|smoke
# (default: paper when a GPU is visible, quick otherwise; printed at the start),
# DATA=folder of the ISBI 2012 files (default: $$ISBI2012_DIR, then
# ~/.keras/datasets/isbi2012), RESULTS=where results/<profile>/ goes,
# SEED=N trains with seed N instead of the profile's (default RESULTS then:
# results/seed-N, so a seed spread never mixes with the committed runs),
# TIME_LIMIT=MINUTES caps each training (e.g. the paper profile in a GPU lease).
# Each target writes results/<profile>/<experiment>/ and regenerates
# results/<profile>/SUMMARY.md; re-running reuses finished trainings.
PROFILE ?=
DATA ?=
RESULTS ?=
SEED ?=
TIME_LIMIT ?=
REPRODUCE = $(VENV)/bin/keras-unets reproduce
REPRODUCE_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(DATA),--data $(DATA)) \
	$(if $(RESULTS),--results $(RESULTS)) $(if $(SEED),--seed $(SEED)) \
	$(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT))

reproduce-unet: venv
	$(REPRODUCE) unet $(REPRODUCE_ARGS)

reproduce-unetpp: venv
	$(REPRODUCE) unetpp $(REPRODUCE_ARGS)

reproduce-unet3p: venv
	$(REPRODUCE) unet3p $(REPRODUCE_ARGS)

reproduce: venv
	$(REPRODUCE) all $(REPRODUCE_ARGS)

# Not in the report: each network trained again without slices 20-24, which
# choose its epoch and threshold; 25-29 only measure (one more training per
# network). NETWORKS=unet,unet3p limits it; finished networks are reused.
NETWORKS ?=
reproduce-holdout: venv
	$(REPRODUCE) holdout $(REPRODUCE_ARGS) $(if $(NETWORKS),--networks $(NETWORKS))

# Every CPU benchmark script bench/bench_*.py (results in bench/results/).
bench: venv
	PY=$(PY) bash bench/run_all.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

# Regenerate notebooks/*.ipynb from their percent-format sources notebooks/NN_*.py
# (outputs of unchanged cells are kept; run notebooks-execute after an edit).
notebooks: venv
	$(PY) notebooks/build.py

# Rebuild and execute the notebooks in the stored (readable) setting, keeping
# their outputs and figures: about 2 minutes of CPU per notebook. make test
# runs them in the CI setting (KERAS_UNETS_NB_FAST=1, tests/test_notebooks.py).
notebooks-execute: venv
	env -u KERAS_UNETS_NB_FAST $(PY) notebooks/build.py --execute
