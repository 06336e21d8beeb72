# OneVision encoder deployment bundle. `make all` runs the main job on the embedded synthetic checkpoint,
# `make test` runs lint, type checks and the tests. Both set up .venv from requirements.txt on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := all

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TRT_STUBS := tensorrt-stubs==10.13.0.35.1

MODEL ?=
PRESET ?= full
PRECISION ?= fp32
PROFILE ?= image-448
OUT ?= artifacts
DEVICE ?=

.PHONY: all test lint typecheck pytest venv checkpoint checkpoint-tiny smoke clean

venv: $(STAMP)
$(STAMP): requirements.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# tensorrt-stubs declares a dependency on the tensorrt wheel, a stub that downloads from NVIDIA's index: skip it.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(TRT_STUBS)
	touch $(STAMP)

checkpoint: $(STAMP)
	$(PY) -c "from models.synthetic import ensure_default; print(ensure_default('$(PRESET)'))"

checkpoint-tiny: PRESET = tiny
checkpoint-tiny: checkpoint

smoke: $(STAMP)
	$(PY) -m models --preset $(PRESET) $(if $(MODEL),--model $(MODEL))

all: smoke

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf artifacts results runtime/cpp/build .mypy_cache .ruff_cache .pytest_cache
