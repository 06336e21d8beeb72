# OneVision encoder deployment bundle. `make all` runs the main job on the embedded synthetic checkpoint,
# `make test` runs lint, type checks and the tests. Both set up .venv from requirements.txt on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := all

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TRT_STUBS := tensorrt-stubs==10.13.0.35.1
OPENVINO := openvino==2026.4.0

MODEL ?=
PRESET ?= full
PRECISION ?= fp32
PROFILE ?= image-448
OUT ?= artifacts
DEVICE ?=

ARTIFACTS ?=
CASES ?=
EXPORT_ARGS = $(if $(MODEL),--model $(MODEL)) --precision $(PRECISION) --profile $(PROFILE) --out $(OUT) \
	$(if $(DEVICE),--device $(DEVICE))

.PHONY: all test lint typecheck pytest venv checkpoint checkpoint-tiny smoke clean \
	export export-pt2 export-aoti export-onnx export-trt export-trt-rtx export-torchscript export-openvino parity bench \
	bench-quick bench-mixed runtime-cpp gpu-check gpu-check-plan gpu-check-rehearsal gpu-check-deps rehearsal-venv serve \
	serve-repository serve-load embed-corpus

venv: $(STAMP)
$(STAMP): requirements.txt requirements-serving.txt Makefile  # Makefile: the --no-deps pins below
	# Byte-compiled at install (no --no-compile): with PYTHONDONTWRITEBYTECODE set, as on this machine and in CI, every
	# process would compile what it imports again (measured: pytest 70 s slower with --no-compile).
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# nvidia-pytriton/tritonclient declare numpy<2 and protobuf<7: installed without their pins (see the file).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-serving.txt
	# tensorrt-stubs declares a dependency on the tensorrt wheel, a stub that downloads from NVIDIA's index: skip it.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(TRT_STUBS)
	# OpenVINO (the openvino kind). Its dependencies are numpy (<2.6: the pin above fits) and openvino-telemetry, left out
	# on purpose: with it installed, `import openvino` sends usage events unless the user opted out; without it, stubs.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(OPENVINO)
	touch $(STAMP)

checkpoint: $(STAMP)
	$(PY) -c "from models.synthetic import ensure_default; print(ensure_default('$(PRESET)'))"

checkpoint-tiny: PRESET = tiny
checkpoint-tiny: checkpoint

smoke: $(STAMP)
	$(PY) -m models --preset $(PRESET) $(if $(MODEL),--model $(MODEL))

all: export parity

# Artifacts (export/): one kind each, or every kind this machine can build.
export-pt2: $(STAMP)
	$(PY) -m export pt2 $(EXPORT_ARGS)
export-aoti: $(STAMP)
	$(PY) -m export aoti $(EXPORT_ARGS)
export-onnx: $(STAMP)
	$(PY) -m export onnx $(EXPORT_ARGS)
export-openvino: $(STAMP)
	$(PY) -m export openvino $(EXPORT_ARGS)
export-trt: $(STAMP)
	$(PY) -m export trt $(EXPORT_ARGS)
# TensorRT-RTX: builds ahead of time on any machine (no GPU). PROFILE may list several (PROFILE="image-448 video-4x448":
# one engine, one optimisation profile each); TARGETS= compute capabilities (default 8.6,8.9,12.0).
export-trt-rtx: $(STAMP)
	$(PY) -m export trt-rtx $(if $(MODEL),--model $(MODEL)) --precision $(PRECISION) \
		$(foreach p,$(PROFILE),--profile $(p)) --out $(OUT) $(if $(TARGETS),--option targets=$(TARGETS))
# TorchScript (legacy path, for libtorch services and Triton's pytorch_libtorch backend): traced + frozen, .pt.
export-torchscript: $(STAMP)
	$(PY) -m export torchscript $(EXPORT_ARGS)
export: $(STAMP)
	$(PY) -m export all $(EXPORT_ARGS)

# Parity suite (parity/): every artifact under $(OUT) against eager references.
parity: $(STAMP)
	$(PY) -m parity $(if $(MODEL),--model $(MODEL)) --artifacts-dir $(OUT) $(if $(ARTIFACTS),--artifacts $(ARTIFACTS)) \
		$(if $(CASES),--cases $(CASES)) $(if $(DEVICE),--device $(DEVICE))

# Benchmarks (benchmarks/): latency/throughput/memory of every artifact against eager in one run.
bench: $(STAMP)
	$(PY) -m benchmarks $(if $(MODEL),--model $(MODEL)) --artifacts-dir $(OUT) $(if $(ARTIFACTS),--artifacts $(ARTIFACTS)) \
		$(if $(DEVICE),--device $(DEVICE))
bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick
# Packed batches against one item at a time and padded batches, on seeded mixed workloads (benchmarks/mixed.py): every
# kind this machine builds, batched and packed for the CPU mixes (benchmarks/profiles/, fp32), under $(OUT)/mixed
# (export all keeps what is up to date), then one run of every kind; results in results/mixed/cpu/.
bench-mixed: $(STAMP)
	for p in cpu-batched cpu-packed; do $(PY) -m export all $(if $(MODEL),--model $(MODEL)) --precision fp32 --quiet \
		--profile benchmarks/profiles/$$p.json --out $(OUT)/mixed/$$p || exit 1; done
	$(PY) -m benchmarks.mixed $(if $(MODEL),--model $(MODEL)) --artifacts-dir $(OUT)/mixed

# Serving (serving/): Triton Inference Server (from nvidia-pytriton) on ARTIFACT, or the best artifact under $(OUT)
# for MODEL/PRECISION/PROFILE. Ctrl-C stops it after in-flight requests finish.
ARTIFACT ?=
ADDRESS ?= 127.0.0.1
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PREFERRED_BATCH ?=
QUEUE_DELAY_US ?= 1000
INSTANCES ?= 1
REPOSITORY ?= model_repository
SERVE_ARTIFACT = $(if $(ARTIFACT),--artifact $(ARTIFACT)) $(if $(MODEL),--model $(MODEL)) --precision $(PRECISION) \
	--profile $(PROFILE) --artifacts-dir $(OUT) --device $(if $(DEVICE),$(DEVICE),cpu) \
	$(if $(PREFERRED_BATCH),--preferred-batch-sizes $(PREFERRED_BATCH)) --max-queue-delay-us $(QUEUE_DELAY_US) \
	--instances $(INSTANCES)
serve: $(STAMP)
	$(PY) -m serving serve $(SERVE_ARTIFACT) --address $(ADDRESS) --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) \
		--metrics-port $(METRICS_PORT)
serve-repository: $(STAMP)
	$(PY) -m serving repository $(SERVE_ARTIFACT) --out $(REPOSITORY)
serve-load: $(STAMP)
	$(PY) -m serving.load --url 127.0.0.1:$(HTTP_PORT) --metrics http://127.0.0.1:$(METRICS_PORT)/metrics \
		--artifact $(ARTIFACT)

# Embedding a corpus (corpus/): every image/video of INPUT (a folder, a text file of paths, a .parquet/.csv manifest)
# through ARTIFACT into Parquet shards in OUT, with MODEL's preprocessor_config.json (default: the checkpoint the
# artifact was exported from). Resumable: run it again after a crash. RAY=1 runs on Ray Data (RAY_ADDRESS= a cluster,
# else a local instance); FEATURES=fp32|fp16|bf16 (stored precision), MODE=crop|native|codec, FRAMES=, POOLED=1,
# SHARD_SIZE=, WORKERS= (decode processes), RAY_ACTORS=, RAY_GPUS_PER_ACTOR=, OVERWRITE=1, CORPUS_ARGS= (any other
# option of `python -m corpus --help`). OUT has no default here (the export targets' default, artifacts/, is not it).
INPUT ?=
FEATURES ?= fp32
MODE ?= crop
FRAMES ?=
POOLED ?=
SHARD_SIZE ?= 64
WORKERS ?=
OVERWRITE ?=
RAY ?=
RAY_ADDRESS ?=
RAY_ACTORS ?= 1
RAY_GPUS_PER_ACTOR ?= 0
CORPUS_ARGS ?=
embed-corpus: $(STAMP)
	$(if $(INPUT),,$(error embed-corpus needs INPUT=folder|paths.txt|manifest.parquet|manifest.csv))
	$(if $(filter command line environment environment override,$(origin OUT)),,$(error embed-corpus needs OUT=folder))
	$(if $(ARTIFACT),,$(error embed-corpus needs ARTIFACT=path/to/artifact (any kind runtime.load opens)))
	$(PY) -m corpus $(INPUT) --out $(OUT) --artifact $(ARTIFACT) $(if $(MODEL),--model $(MODEL)) --mode $(MODE) \
		--features $(FEATURES) --shard-size $(SHARD_SIZE) $(if $(FRAMES),--frames $(FRAMES)) $(if $(POOLED),--pooled) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(OVERWRITE),--overwrite) $(if $(DEVICE),--device $(DEVICE)) \
		$(if $(RAY),--ray --ray-actors $(RAY_ACTORS) --ray-gpus-per-actor $(RAY_GPUS_PER_ACTOR)) \
		$(if $(RAY_ADDRESS),--ray-address $(RAY_ADDRESS)) $(CORPUS_ARGS)

# C++ runtime (runtime/cpp/): library + command-line runner against the libtorch inside the torch wheel, nlohmann/json
# from the nlohmann-json wheel (requirements.txt) and OpenSSL's libcrypto (Debian: libssl-dev).
runtime-cpp: $(STAMP)
	cmake -S runtime/cpp -B runtime/cpp/build -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
		-DNLOHMANN_JSON_INCLUDE_DIR="$$($(PY) -c 'import nlohmann_json; print(nlohmann_json.get_include())')"
	cmake --build runtime/cpp/build -j 2

# Everything a CUDA GPU can show (tools/gpu_check/), planned to fit the time a GPU machine is lent: the machine's own
# Python, no venv, every report in RESULTS (summary.md/json rewritten after every step). GPU_CHECK=core (default, at
# most GPU_CHECK_BUDGET_S=420 s) or full (the rest, for a second call: what the first made is reused). Without a CUDA
# GPU: one line, nothing built, exit 0.
PYTHON ?= python3
RESULTS ?=
GPU_CHECK ?= core
GPU_CHECK_BUDGET_S ?= 420
gpu-check:
	@PYTHONPATH=.$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m tools.gpu_check run --tier $(GPU_CHECK) \
		--budget-s $(GPU_CHECK_BUDGET_S) $(if $(RESULTS),--results $(RESULTS)) $(if $(MODEL),--model $(MODEL))
gpu-check-plan:
	@PYTHONPATH=.$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m tools.gpu_check plan
# Headers the C++ runner builds with, copied where a GPU machine without them can be given them (`carry` .gpu-deps).
gpu-check-deps: $(STAMP)
	@mkdir -p .gpu-deps/include
	@cp -r "$$($(PY) -c 'import nlohmann_json; print(nlohmann_json.get_include())')/nlohmann" .gpu-deps/include/
	@if [ -f /usr/include/openssl/evp.h ]; then cp -r /usr/include/openssl .gpu-deps/include/ && \
		cp /usr/include/x86_64-linux-gnu/openssl/*.h .gpu-deps/include/openssl/ 2>/dev/null; \
	else echo "note: no OpenSSL headers here (Debian: libssl-dev): .gpu-deps has nlohmann/json only"; fi

# The same plan on the CPU (tiny checkpoint for every step), in a virtualenv with exactly the Python packages the lent
# GPU machine has for this bundle (requirements-gpu-machine.txt), so a missing package, a wrong step argument or a
# transformers difference fails here, not on the GPU. `make test` runs it.
REHEARSAL_VENV := .venv-gpu-machine
REHEARSAL_PY := $(REHEARSAL_VENV)/bin/python
REHEARSAL_STAMP := $(REHEARSAL_VENV)/.installed
rehearsal-venv: $(REHEARSAL_STAMP)
$(REHEARSAL_STAMP): requirements-gpu-machine.txt
	rm -rf $(REHEARSAL_VENV)
	$(PYTHON_BOOT) -m venv $(REHEARSAL_VENV)
	$(REHEARSAL_PY) -m pip install --quiet --disable-pip-version-check -r requirements-gpu-machine.txt
	touch $(REHEARSAL_STAMP)
gpu-check-rehearsal: $(REHEARSAL_STAMP) gpu-check-deps
	PYTHONPATH=. $(REHEARSAL_PY) -m tools.gpu_check run --rehearsal --tier $(GPU_CHECK) --budget-s 100000 \
		$(if $(RESULTS),--results $(RESULTS))

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy checks the TensorRT code against tensorrt-stubs, repaired into typings/ (see tools/trt_typings.py).
typings/VERSION: $(STAMP) tools/trt_typings.py
	$(PY) tools/trt_typings.py typings

typecheck: $(STAMP) typings/VERSION
	$(PY) -m mypy

pytest: $(STAMP) $(REHEARSAL_STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest gpu-check-rehearsal

clean:
	rm -rf artifacts results runtime/cpp/build typings .mypy_cache .ruff_cache .pytest_cache .hypothesis
