"""TensorRT 10/11 without TensorRT: type checks against tensorrt-stubs and the one-line refusal.

No machine here has TensorRT 10/11 (PyPI's `tensorrt` wheels download from NVIDIA's index), so what can be checked
everywhere is checked here: mypy runs the TensorRT modules (the builder and runner TensorRT-RTX shares) against the
stubs (a wrong TensorRT call fails this file) and `python -m export trt` refuses in one line. The real ONNX parser
and real engine builds are TensorRT-RTX's (tests/test_tensorrt_rtx.py). The tests at the end build and run real
engines; they skip unless a GPU is present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from contract.profiles import PROFILES, ShapeProfile
from export.base import BuildRequest, ExportError
from export.onnx_model import OnnxBuilder, reusable_onnx
from export.trt_engine import TensorRTBuilder
from runtime.backends.tensorrt import TRT, TRT_RTX, cuda_unavailable
from tools.trt_typings import generate, repair

ROOT = Path(__file__).resolve().parents[1]
TRT_MODULES = ["export/trt_engine.py", "export/trt_parse.py", "runtime/backends/tensorrt.py", "tools/trt_typings.py"]
NO_TRT = TRT.unavailable()
NO_GPU_TRT = NO_TRT or cuda_unavailable()
PROFILE = PROFILES["test-small"]


# -- static checks: mypy against the (repaired) tensorrt-stubs -------------------------------------------------------


@pytest.fixture(scope="module")
def typings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("typings")
    files = generate(out)
    assert {f.relative_to(out).as_posix() for f in files} >= {"tensorrt/__init__.pyi", "tensorrt_bindings/tensorrt.pyi"}
    return out


def _mypy(typings: Path, cache: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(typings)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache)]
    return subprocess.run([*cmd, *targets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_stub_repairs() -> None:
    text = (
        "from __future__ import annotations\nimport tensorrt_libs as tensorrt_libs\nclass A:\n"
        "    flag: bool\n    def f(self, in: list[int], out: int) -> bool:\n        ...\n"
        "    def g(self, a: int = None, b: int) -> int:\n        ...\n"
        "    def h(self, m: typing_extensions.Buffer) -> None:\n        ...\nbool: DataType\n"
    )
    fixed = repair(text)
    compile(fixed, "<stub>", "exec")  # parses now
    assert "tensorrt_libs" not in fixed
    assert "def f(self, in_: list[int], out: int) -> _builtins.bool:" in fixed
    assert "def g(self, a: int = None, b: int = ...) -> int:" in fixed
    assert "    flag: _builtins.bool" in fixed and "\nbool: DataType" in fixed
    assert "import builtins as _builtins" in fixed and "import typing_extensions" in fixed


def test_mypy_checks_tensorrt_code_against_the_stubs(typings: Path, tmp_path: Path) -> None:
    result = _mypy(typings, tmp_path / "cache", *TRT_MODULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_really_uses_the_stubs(typings: Path, tmp_path: Path) -> None:
    """A call TensorRT 10 removed must fail: proof that `tensorrt` resolves to the stubs, not to Any."""
    planted = tmp_path / "planted_trt.py"
    planted.write_text(
        "import tensorrt as trt\n\n\n"
        "def build(network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> None:\n"
        "    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
        "    builder.build_engine(network, config)\n"
        "    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)\n"
    )
    result = _mypy(typings, tmp_path / "cache", str(planted))
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"Builder" has no attribute "build_engine"' in result.stdout
    assert 'Missing positional argument "pool_size"' in result.stdout


def test_tensorrt_not_in_ignore_missing_imports() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for block in text.split("[[tool.mypy.overrides]]")[1:]:
        if "ignore_missing_imports = true" in block:
            assert "tensorrt" not in block.split("ignore_missing_imports")[0]


# -- the one-line refusal where TensorRT is missing ------------------------------------------------------------------


@pytest.mark.skipif(NO_TRT is None, reason="TensorRT is installed here: the refusal cannot be observed")
def test_builder_unavailable_is_one_line(tiny_dir: Path, tmp_path: Path) -> None:
    reason = TensorRTBuilder().unavailable(BuildRequest(tiny_dir, "fp32", [PROFILE], tmp_path))
    assert reason is not None and reason.startswith("TensorRT is not installed: ") and "\n" not in reason


@pytest.mark.skipif(NO_TRT is None, reason="TensorRT is installed here: the refusal cannot be observed")
def test_cli_refuses_in_one_line(tiny_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "export", "trt", "--model", str(tiny_dir), "--profile", "test-small"]
    result = subprocess.run([*cmd, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: trt: {NO_TRT}"], result.stderr
    assert "make export-trt-rtx" in lines[0]  # where TensorRT 10/11 cannot be installed, what builds here
    assert not list(tmp_path.iterdir())  # nothing half-built


@pytest.mark.skipif(NO_GPU_TRT is None, reason="TensorRT and a CUDA GPU are present: the refusal cannot be observed")
def test_runtime_refuses_without_tensorrt_or_gpu(tmp_path: Path) -> None:
    from runtime.backends.tensorrt import TensorRTEngine
    from runtime.base import LoadError

    with pytest.raises(LoadError) as info:
        TensorRTEngine(tmp_path / "missing.engine", torch.device("cuda", 0))
    assert str(info.value) == f"{tmp_path / 'missing.engine'}: {NO_GPU_TRT}"


# -- builder checks that need no TensorRT -----------------------------------------------------------------------------


def test_builder_refuses_bad_options(tiny_dir: Path, tmp_path: Path) -> None:
    request = BuildRequest(tiny_dir, "fp32", [PROFILE], tmp_path, options={"opt_level": 7})
    with pytest.raises(ExportError, match=r"opt_level must be 0\.\.5"):
        TensorRTBuilder().build(request)


def test_existing_onnx_is_checked_against_the_request(tiny_dir: Path, tmp_path: Path) -> None:
    onnx_result = OnnxBuilder().build(BuildRequest(tiny_dir, "fp32", [PROFILE], tmp_path, options={"quiet": True}))
    facts = reusable_onnx(onnx_result.path, BuildRequest(tiny_dir, "fp32", [PROFILE], tmp_path), "fp32")
    assert facts["sha256"] == onnx_result.manifest.sha256 and not facts["built"]
    wider = ShapeProfile.from_dict({**PROFILE.to_dict(), "name": "wider", "batch": {"min": 1, "opt": 2, "max": 16}})
    with pytest.raises(ExportError) as info:
        request = BuildRequest(tiny_dir, "bf16", [PROFILE, wider], tmp_path, output_layer=-2)
        reusable_onnx(onnx_result.path, request, request.precision)
    message = str(info.value)
    assert "precision fp32, but this build converts the bf16 graph" in message and "output layer -1, not -2" in message
    assert "profile 'wider': batch [1, 16] not inside [1, 4]" in message and "\n" not in message


# -- the C++ hook: runtime/cpp/cmake/tensorrt.cmake (configure only: no TensorRT headers here to compile against) --


def _configure(build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = torch.utils.cmake_prefix_path
    cmd = ["cmake", "-S", str(ROOT / "runtime" / "cpp"), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH")
def test_cmake_tensorrt_option(tmp_path: Path) -> None:
    off = _configure(tmp_path / "off", "-DONEVISION_WITH_TENSORRT=OFF")
    assert off.returncode == 0 and "TensorRT runner: off (ONEVISION_WITH_TENSORRT=OFF" in off.stdout, off.stderr
    auto = _configure(tmp_path / "auto", "-DONEVISION_WITH_TENSORRT=AUTO")
    assert auto.returncode == 0, auto.stderr
    assert "TensorRT runner: on" in auto.stdout or "TensorRT runner: off (not found: " in auto.stdout
    if "TensorRT runner: off (not found: " in auto.stdout:
        on = _configure(tmp_path / "on", "-DONEVISION_WITH_TENSORRT=ON")
        assert on.returncode != 0 and "ONEVISION_WITH_TENSORRT=ON, but not found" in on.stderr
    fake = tmp_path / "fake-tensorrt"  # empty files: enough for find_path/find_library, nothing is compiled
    (fake / "include").mkdir(parents=True)
    (fake / "lib").mkdir()
    (fake / "include" / "NvInfer.h").touch()
    (fake / "lib" / "libnvinfer.so").touch()
    found = _configure(tmp_path / "found", "-DONEVISION_WITH_TENSORRT=AUTO", f"-DTENSORRT_ROOT={fake}")
    if "the CUDA toolkit" in found.stdout:
        pytest.skip("no CUDA toolkit here: the runner's sources cannot be added")
    assert found.returncode == 0, found.stderr
    trt_make = (tmp_path / "found" / "CMakeFiles" / "onevision_trt.dir" / "build.make").read_text()
    assert "trt_runner.cpp" in trt_make  # the torch-free runner library, whatever libtorch this is
    if "library onevision_trt only (this libtorch has no CUDA" in found.stdout:
        return
    assert f"TensorRT runner: on ({fake}/lib/libnvinfer.so)" in found.stdout
    make = (tmp_path / "found" / "CMakeFiles" / "onevision_runtime.dir" / "build.make").read_text()
    flags = (tmp_path / "found" / "CMakeFiles" / "onevision_runtime.dir" / "flags.make").read_text()
    assert "trt_backend.cpp" in make and "-DONEVISION_WITH_TENSORRT" in flags


# -- real engines: only where TensorRT and a CUDA GPU are -------------------------------------------------------------


def _engine_missing(kind: str) -> str | None:
    """Why an engine of `kind` cannot be built *and run* here (None if it can)."""
    if kind == "trt":
        return NO_GPU_TRT
    missing = TRT_RTX.unavailable() or cuda_unavailable()
    if missing:
        return missing
    here = "{}.{}".format(*torch.cuda.get_device_capability())
    return None if here in TRT_RTX.default_targets else f"compute capability {here} is no TensorRT-RTX default target"


@pytest.mark.parametrize("kind", ["trt", "trt-rtx"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_engine_builds_loads_and_matches_eager(tiny_dir: Path, tmp_path: Path, precision: str, kind: str) -> None:
    """The same test for both kinds: built, verified, loaded by runtime.load, compared with eager, two profiles,
    threads. Runs only where the engine can run (a GPU, and for trt-rtx one of its targets)."""
    missing = _engine_missing(kind)
    if missing:
        pytest.skip(f"needs {kind} and a GPU it runs on (here: {missing})")
    import runtime
    from export import build
    from export.inputs import inputs_at
    from export.verify import MAX_REL_L2, compare
    from export.wrapper import load_wrapper

    small = PROFILES["test-small"]
    wide = ShapeProfile.from_dict({**small.to_dict(), "name": "wide", "batch": {"min": 6, "opt": 6, "max": 8}})
    cache = tmp_path / "trt.cache"
    request = BuildRequest(tiny_dir, precision, [small, wide], tmp_path, options={"timing_cache": str(cache)})
    result = build(kind, request)
    manifest = result.manifest
    assert manifest.kind == kind and manifest.device == "cuda" and cache.is_file()
    assert isinstance(manifest.build["verify"], list)  # verified against eager on this GPU before install
    io = {t["name"]: t for t in manifest.extra["engine_io"]}
    assert io["patch_positions"]["dtype"] == "INT64" and len(io["pixel_values"]["profiles"]) == 2
    assert manifest.profile["batch"]["max"] == 8  # the union of both profiles

    runner = runtime.load(result.path)
    wrapper = load_wrapper(tiny_dir, precision, -1, "cuda")
    for shape in [(1, 1, 28, 28), (3, 2, 56, 84), (7, 1, 28, 42)]:
        pixels, positions = inputs_at(shape, wrapper.model.dtype, 14, "cuda", seed=3)
        with torch.no_grad():
            stats = compare(runner(pixels, positions), wrapper(pixels, positions))
        assert stats["rel_l2"] < MAX_REL_L2[precision], (shape, stats)

    from contract.errors import InputError

    with pytest.raises(InputError, match="no optimisation profile"):
        pixels, positions = inputs_at((5, 1, 28, 28), wrapper.model.dtype, 14, "cuda")
        runner(pixels, positions)  # batch 5 lies between the two profiles

    outs: list[torch.Tensor] = []
    pixels, positions = inputs_at((2, 1, 28, 28), wrapper.model.dtype, 14, "cuda", seed=4)
    threads = [threading.Thread(target=lambda: outs.append(runner(pixels, positions))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 4 and all(torch.equal(o, outs[0]) for o in outs)
    runner.close()
