# keras-unets: every target installs what it needs (via the venv target),
# so any of them works as the first command after `git clone`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
PYTEST_WORKERS ?= 2

.PHONY: venv test test-slow bench clean reproduce reproduce-unet reproduce-unetpp reproduce-unet3p

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

reproduce-unet reproduce-unetpp reproduce-unet3p reproduce: venv
	@echo "The reproduction pipeline is not implemented yet (see issue 6)." >&2; exit 2

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
