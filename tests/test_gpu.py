"""The GPU tier (`pytest -m gpu`, run by `make gpu-check`): what only a CUDA GPU can show. Every test here skips
with "needs a CUDA GPU" where torch sees none, so `pytest` on a CPU machine lists them as skipped with the reason.

- eager CUDA fp32 and bf16 against every artifact kind built on this machine for CUDA (pt2, AOTInductor, ONNX on
  the CUDA provider when onnxruntime-gpu is installed) and a pt2 exported on the CPU and moved to CUDA;
- the C++ AOTInductor runner on CUDA (when `runtime/cpp/build/onevision_run` is built: `make gpu-check` builds it);
- CPU and CUDA eager agree;
- TF32 discipline on the hardware: with TF32 allowed, an fp32 matmul/convolution shows TF32's ~1e-3 error, and
  inside `models.tf32.exact_float32()` it shows fp32's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import runtime
from contract.backends import BACKENDS
from contract.manifest import read_manifest
from contract.profiles import PROFILES
from export import BuildRequest, build, get_builder
from export.verify import MAX_REL_L2
from models import load_model, weights_sha256
from models.tf32 import _restore, _snapshot, exact_float32
from parity.artifacts import eager_artifact
from runtime.backends.onnx import CUDA_EP
from runtime.positions import image_positions, video_positions
from tests.conftest import seeded

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

PROFILE = PROFILES["test-small"]
ROOT = Path(__file__).resolve().parents[1]
# `make gpu-check` passes the C++ runner it built and the tiny artifacts it exported (reused, not rebuilt).
CPP_BINARY = Path(os.environ.get("ONEVISION_CPP_RUNNER") or ROOT / "runtime" / "cpp" / "build" / "onevision_run")
GPU_ARTIFACTS = os.environ.get("ONEVISION_GPU_ARTIFACTS")
# Shapes across the profile (batch, frames, height, width), not only the export example.
SHAPES = [(1, 1, 56, 42), (2, 3, 28, 56), (4, 4, 112, 112), (1, 1, 14, 28)]


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a64 - b64).norm() / b64.norm().clamp_min(1e-30))


def inputs(shape: tuple[int, int, int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    b, t, h, w = shape
    pv = seeded(b, 3, t, h, w, seed=seed)
    return pv, video_positions(pv, 64 if t > 1 else None)


@pytest.fixture(scope="module")
def cuda_artifacts(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Tiny artifacts built for CUDA on this machine, plus a pt2 exported on the CPU: the ones `make gpu-check`
    exported ($ONEVISION_GPU_ARTIFACTS, when built from this test's checkpoint), else built here. A kind whose
    builder says this machine cannot build it is recorded with that reason (its test skips saying so); any other
    build failure fails the test of that kind (a broken install is not a skip)."""
    out = tmp_path_factory.mktemp("gpu-artifacts")
    built: dict[str, Path | str] = {}
    jobs = [(k, p, "cuda") for k in ("pt2", "aoti") for p in ("fp32", "bf16")] + [("onnx", "fp32", "cuda")]
    for kind, precision, device in [*jobs, ("pt2", "fp32", "cpu")]:  # a bf16 ONNX has no onnxruntime kernels
        key = f"{kind}-{precision}" + ("-cpu-built" if device == "cpu" else "")
        request = BuildRequest(tiny_dir, precision, [PROFILE], out / device, device=device, options={"quiet": True})
        reused = _reusable(kind, precision, device, tiny_dir)
        if reused is not None:
            built[key] = reused
            continue
        reason = get_builder(kind).unavailable(request)
        built[key] = f"cannot build here: {reason}" if reason else build(kind, request).path
    return built


def _reusable(kind: str, precision: str, device: str, model: Path) -> Path | None:
    """The artifact `make gpu-check` exported for this kind (same weights as `model`), if there is one."""
    if not GPU_ARTIFACTS:
        return None
    folder = Path(GPU_ARTIFACTS) / ("cpu-built" if device == "cpu" else "")
    path = folder / f"{kind}-{precision}-{PROFILE.name}{BACKENDS[kind].suffix}"
    if not path.is_file():
        return None
    manifest = read_manifest(path)
    same = manifest.source.get("weights_sha256") == weights_sha256(model) and manifest.device == device
    return path if same else None


@pytest.fixture(scope="module")
def eager_cuda(tiny_dir: Path) -> dict[str, Any]:
    return {
        p: load_model(tiny_dir, d, "sdpa", device="cuda")
        for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }


def eager_out(model: Any, pv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), exact_float32():
        return model(pv.to("cuda", model.dtype), patch_positions=pos.to("cuda")).last_hidden_state


def _runner(cuda_artifacts: dict[str, Path | str], key: str) -> Any:
    """The artifact on CUDA. Skipped only for what this machine legitimately lacks: a kind it cannot build, an
    onnxruntime built without its CUDA provider (a CPU-only wheel). A CUDA provider that is installed but refuses
    the session, like any other load error, fails."""
    path = cuda_artifacts[key]
    if isinstance(path, str):
        pytest.skip(f"{key}: {path}")
    if key.startswith("onnx") and CUDA_EP not in ort_providers():
        pytest.skip(f"{key}: this onnxruntime has no {CUDA_EP} (a CPU-only build; onnxruntime-gpu runs it)")
    return runtime.load(path, device="cuda")


def ort_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


@pytest.mark.parametrize("key", ["pt2-fp32", "pt2-bf16", "aoti-fp32", "aoti-bf16", "onnx-fp32", "pt2-fp32-cpu-built"])
def test_artifact_on_cuda_matches_eager_cuda(
    cuda_artifacts: dict[str, Path | str], eager_cuda: dict[str, Any], key: str
) -> None:
    runner = _runner(cuda_artifacts, key)
    precision = key.split("-")[1]
    assert runner.device.type == "cuda"
    if key.startswith("onnx"):
        assert runner.provider == "CUDAExecutionProvider"
    for i, shape in enumerate(SHAPES):
        pv, pos = inputs(shape, seed=i)
        with exact_float32():
            got = runner(pv.to(runner.dtype), pos)
        assert got.device.type == "cuda"
        err = rel_l2(got, eager_out(eager_cuda[precision], pv, pos))
        assert err <= MAX_REL_L2[precision], f"{key} at {shape}: rel L2 {err:.2e} > {MAX_REL_L2[precision]:.0e}"


def test_cpu_and_cuda_eager_agree(tiny_dir: Path, eager_cuda: dict[str, Any]) -> None:
    """fp32: the same math on two devices (no TF32) agrees to fp32 rounding; bf16: CUDA is no further from the
    float64 golden than 2x the CPU's own bf16 error."""
    golden_model = load_model(tiny_dir, torch.float64, "sdpa")
    cpu = {p: load_model(tiny_dir, d, "sdpa") for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    for i, shape in enumerate(SHAPES):
        pv, pos = inputs(shape, seed=10 + i)
        with torch.inference_mode(), exact_float32():
            golden = golden_model(pv.double(), patch_positions=pos).last_hidden_state
            on_cpu = {p: m(pv.to(m.dtype), patch_positions=pos).last_hidden_state for p, m in cpu.items()}
        on_cuda = {p: eager_out(m, pv, pos) for p, m in eager_cuda.items()}
        # fp32 on two devices differs only by summation order (~1e-7 expected; not yet measured on a GPU).
        assert rel_l2(on_cuda["fp32"], on_cpu["fp32"]) <= 1e-5, shape
        cpu_err, cuda_err = rel_l2(on_cpu["bf16"], golden), rel_l2(on_cuda["bf16"], golden)
        assert cuda_err <= 2 * cpu_err + 1e-3, f"{shape}: CUDA bf16 {cuda_err:.2e} vs CPU bf16 {cpu_err:.2e}"


def test_tf32_discipline_on_the_hardware(tiny_dir: Path) -> None:
    """TF32 allowed (as GPU code often sets it) really changes fp32 matmul results on this GPU, and exact_float32()
    really removes it: matmul, convolution and the whole model (the parity suite's eager stand-in)."""
    saved = _snapshot()
    try:
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(1024, 1024, device="cuda", generator=g)
        b = torch.randn(1024, 1024, device="cuda", generator=g)
        x = torch.randn(2, 3, 112, 112, device="cuda", generator=g)
        w = torch.randn(64, 3, 14, 14, device="cuda", generator=g)
        ops: dict[str, Callable[[], torch.Tensor]] = {
            "matmul": lambda: a @ b,
            "conv": lambda: torch.nn.functional.conv2d(x, w, stride=14),
        }
        exact = {
            "matmul": a.double() @ b.double(),
            "conv": torch.nn.functional.conv2d(x.double(), w.double(), stride=14),
        }
        major, _ = torch.cuda.get_device_capability()
        for name, op in ops.items():
            loose = rel_l2(op(), exact[name])
            with exact_float32():
                strict = rel_l2(op(), exact[name])
            assert strict <= 1e-5, f"{name} inside exact_float32: rel L2 {strict:.2e}"
            # TF32 exists from Ampere on; cuBLAS uses it for a large fp32 matmul when allowed (cuDNN may choose a
            # non-tensor-core algorithm for this small convolution, so only its exact side is asserted).
            if major >= 8 and name == "matmul":
                assert loose >= 1e-4, f"{name} with TF32 allowed: rel L2 {loose:.2e} (TF32 should show ~1e-3)"
        pv, pos = inputs((1, 1, 56, 56), seed=3)
        stand_in = eager_artifact(tiny_dir, "fp32", "cuda").run(pv, pos)
        with torch.inference_mode():
            reference = load_model(tiny_dir, torch.float64, "sdpa")(pv.double(), patch_positions=pos).last_hidden_state
        assert rel_l2(stand_in, reference) <= 1e-5
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored
    finally:
        _restore(saved)


_DEFAULTS = _snapshot()  # torch's settings as this process started (pytest changes none)


def test_cpp_aoti_runner_on_cuda(cuda_artifacts: dict[str, Path | str], tmp_path: Path) -> None:
    if not CPP_BINARY.is_file():
        pytest.skip(f"the C++ runner is not built ({CPP_BINARY}); `make gpu-check` builds it")
    path = cuda_artifacts["aoti-fp32"]
    if isinstance(path, str):
        pytest.skip(f"aoti-fp32: {path}")
    py = runtime.load(path, device="cuda")
    pv = seeded(2, 3, 1, 56, 42, seed=4)
    pos = image_positions(pv)
    np.save(tmp_path / "pv.npy", pv.numpy())
    np.save(tmp_path / "pos.npy", pos.numpy())
    cmd = [str(CPP_BINARY), "--artifact", str(path), "--pixel-values", str(tmp_path / "pv.npy")]
    cmd += ["--positions", str(tmp_path / "pos.npy"), "--out", str(tmp_path / "out.npy"), "--device", "cuda"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "aoti-cuda on cuda" in result.stdout, result.stdout
    got = np.load(tmp_path / "out.npy")
    # Both processes with torch's default flags (the C++ runner does not touch them: libtorch's defaults allow TF32
    # in cuDNN convolutions), so the comparison is like for like. The same AOTInductor kernels run in both; only
    # cuBLAS's/cuDNN's algorithm choice could differ between two processes.
    assert _snapshot() == _DEFAULTS, "this process changed torch's TF32 defaults"
    expected = py(pv, pos).cpu().numpy()
    diff = float(np.abs(got - expected).max())
    assert diff <= 1e-5, f"C++ vs Python on CUDA: max abs diff {diff}"
