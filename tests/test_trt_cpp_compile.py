"""The C++ TensorRT runner (runtime/cpp/src/trt_runner.cpp) compiled against NVIDIA's public TensorRT headers.

TensorRT's libraries cannot be installed here, so nothing links or runs; what CI checks is that the runner compiles
(syntax and semantics: every TensorRT and CUDA call resolves, with -Wall -Wextra -Werror on our code) against the
TensorRT 10.13 and 11.1 headers and the CUDA runtime headers of the `nvidia-cuda-runtime-cu12` /
`nvidia-cuda-nvcc-cu12` wheels, with no libtorch on the include path. A planted call TensorRT 10 removed must fail.

The headers are looked for in $ONEVISION_TENSORRT_HEADERS, else `../shared/third_party/tensorrt-headers` beside the
checkout (they are never part of the project); without them these tests skip saying so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPP = ROOT / "runtime" / "cpp"
RUNNER = CPP / "src" / "trt_runner.cpp"
VERSIONS = ("10.13", "11.1")


def _headers() -> Path:
    env = os.environ.get("ONEVISION_TENSORRT_HEADERS")
    return Path(env) if env else ROOT.parent / "shared" / "third_party" / "tensorrt-headers"


def _wheel_include(module: str) -> Path | None:
    spec = importlib.util.find_spec(module) if importlib.util.find_spec("nvidia") else None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "include").is_dir():
            return Path(location) / "include"
    return None


COMPILER = next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
CUDA_RUNTIME = _wheel_include("nvidia.cuda_runtime")
CUDA_NVCC = _wheel_include("nvidia.cuda_nvcc")
MISSING = (
    "no C++ compiler (c++/g++/clang++) on PATH"
    if COMPILER is None
    else "the CUDA runtime headers are not installed (nvidia-cuda-runtime-cu12, nvidia-cuda-nvcc-cu12: make venv)"
    if CUDA_RUNTIME is None or CUDA_NVCC is None
    else None
)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def _version_dir(version: str) -> Path:
    include = _headers() / version / "include"
    if not (include / "NvInferRuntime.h").is_file():
        pytest.skip(
            f"TensorRT {version} headers not found at {include} (set ONEVISION_TENSORRT_HEADERS or put NVIDIA's "
            "public headers at ../shared/third_party/tensorrt-headers beside the checkout)"
        )
    return include


def _compile(source: Path, include: Path) -> subprocess.CompletedProcess[str]:
    assert COMPILER is not None and CUDA_RUNTIME is not None and CUDA_NVCC is not None
    cmd = [COMPILER, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-I{CPP / 'include'}"]
    # System includes: warnings inside NVIDIA's headers (deprecations) are theirs, not ours.
    cmd += ["-isystem", str(include), "-isystem", str(CUDA_RUNTIME), "-isystem", str(CUDA_NVCC), str(source)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("version", VERSIONS)
def test_runner_compiles_against_tensorrt_headers(version: str) -> None:
    include = _version_dir(version)
    text = (include / "NvInferVersion.h").read_text()
    assert f"#define TRT_MAJOR_ENTERPRISE {version.split('.')[0]}\n" in text  # the version it claims to be
    result = _compile(RUNNER, include)
    assert result.returncode == 0, result.stderr[-4000:]


def test_runner_needs_no_libtorch() -> None:
    sources = [RUNNER, CPP / "include" / "onevision" / "trt_runner.h", CPP / "include" / "onevision" / "tensor_view.h"]
    for path in sources:
        includes = [line for line in path.read_text().splitlines() if line.startswith("#include")]
        assert not [i for i in includes if "ATen" in i or "c10" in i or "torch" in i or "runtime.h" in i], path


@pytest.mark.parametrize("version", VERSIONS)
def test_planted_api_misuse_fails_the_build(version: str, tmp_path: Path) -> None:
    """enqueueV2 (removed in TensorRT 10) instead of enqueueV3: the compile must fail and name it."""
    include = _version_dir(version)
    text = RUNNER.read_text()
    assert "context.enqueueV3(slot.stream)" in text
    planted = tmp_path / "trt_runner_planted.cpp"
    planted.write_text(
        text.replace("context.enqueueV3(slot.stream)", "context.enqueueV2(nullptr, slot.stream, nullptr)")
    )
    result = _compile(planted, include)
    assert result.returncode != 0
    assert "enqueueV2" in result.stderr and "error" in result.stderr
