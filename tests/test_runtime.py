"""runtime.load for every artifact kind buildable here, input validation, artifact integrity, thread safety."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import runtime
from contract.manifest import ManifestError, manifest_path, read_manifest
from contract.profiles import PROFILES
from export import BuildRequest, build
from models import InputError, load_model
from runtime.backends.onnx import CPU_EP, CUDA_EP, UnsupportedError, check_providers, create_session
from runtime.base import LoadError, Runner
from runtime.positions import grid_positions, image_positions, video_positions
from runtime.validation import check_inputs
from tests.conftest import CPU_KINDS, Available, copy_artifact, seeded

KINDS = CPU_KINDS  # every kind this CPU machine runs (trt needs a GPU and TensorRT)
PROFILE = PROFILES["test-small"]  # batch 1..4, frames 1..4, height 14..112, width 28..112
FP32_ATOL = 1e-4  # fp32 artifact vs eager sdpa (measured: pt2 and torchscript 0, aoti ~3e-6, onnx ~7e-6)


@pytest.fixture(scope="module")
def artifacts(tiny_artifacts_fp32: Available[Path]) -> Available[Path]:
    """The session's shared fp32 artifacts of test-small (tests/conftest.py; damaged only through copies); a kind this
    machine cannot build skips its tests saying why."""
    return tiny_artifacts_fp32


@pytest.fixture(scope="module")
def runners(artifacts: Available[Path]) -> Available[Runner]:
    return artifacts.map(runtime.load)


@pytest.fixture(scope="module")
def eager(tiny_dir: Path) -> Any:
    return load_model(tiny_dir, torch.float32, "sdpa")


def reference(model: Any, pv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pv, patch_positions=pos).last_hidden_state  # type: ignore[no-any-return]


# -- loading and numerics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_runner_metadata(runners: dict[str, Runner], kind: str) -> None:
    runner = runners[kind]
    assert runner.kind == kind
    assert runner.device == torch.device("cpu")
    assert runner.dtype == torch.float32
    assert runner.profile == PROFILE
    assert runner.hidden_size == 128
    expected = {
        "pt2": "torch",
        "aoti": "aoti-cpu",
        "onnx": "CPUExecutionProvider",
        "torchscript": "torchscript",
        "openvino": "openvino-CPU-f32",
    }[kind]
    assert runner.provider == expected
    assert kind in repr(runner)


CASES = {
    "image": lambda: (seeded(1, 3, 1, 56, 42, seed=1), None),
    "video": lambda: (seeded(2, 3, 3, 28, 56, seed=2), None),
    "max": lambda: (seeded(4, 3, 4, 112, 112, seed=3), None),
    "min": lambda: (seeded(1, 3, 1, 14, 28, seed=4), None),
    "timeline": lambda: (seeded(1, 3, 4, 42, 42, seed=5), 64),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_matches_eager(runners: dict[str, Runner], eager: Any, kind: str, case: str) -> None:
    pv, timeline = CASES[case]()
    pos = video_positions(pv, timeline)
    out = runners[kind](pv, pos)
    ref = reference(eager, pv, pos)
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    diff = float((out - ref).abs().max())
    assert diff < FP32_ATOL, f"{kind}/{case}: max abs diff {diff}"
    if kind in ("pt2", "torchscript"):
        assert torch.equal(out, ref)  # the same kernels as eager sdpa on the CPU


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_int32_and_rank4_inputs(runners: dict[str, Runner], kind: str) -> None:
    runner = runners[kind]
    pv = seeded(2, 3, 1, 28, 42, seed=7)
    pos = image_positions(pv)
    out = runner(pv, pos)
    assert torch.equal(runner(pv.numpy(), pos.numpy()), out)
    assert torch.equal(runner(pv, pos.to(torch.int32)), out)
    assert torch.equal(runner(pv.numpy(), pos.numpy().astype(np.int32)), out)
    assert torch.equal(runner(pv[:, :, 0], pos), out)  # rank 4 (B, 3, H, W) is T = 1
    assert torch.equal(runner(pv.transpose(3, 4).contiguous().transpose(3, 4), pos), out)  # non-contiguous input


def test_load_through_manifest_path(artifacts: dict[str, Path]) -> None:
    runner = runtime.load(manifest_path(artifacts["pt2"]))
    assert runner.path == artifacts["pt2"]


def test_cuda_refused_without_gpu_or_cuda_provider(artifacts: dict[str, Path]) -> None:
    """No GPU: the kinds that move between devices refuse device=cuda in one line for want of a GPU (an AOTInductor
    package is refused earlier, for its compiled device: test_device_moves). With a GPU (this test used to skip
    there): the ONNX runner is on the CUDA provider or refuses naming it, never a CPU session (the torch kinds'
    device moves are tests/test_gpu.py's)."""
    if not torch.cuda.is_available():
        for kind in ("pt2", "onnx"):
            with pytest.raises(LoadError, match="no CUDA device"):
                runtime.load(artifacts[kind], device="cuda")
        return
    try:
        runner = runtime.load(artifacts["onnx"], device="cuda")
    except LoadError as exc:
        assert not _cuda_ep_here() and CUDA_EP in str(exc)
    else:
        assert runner.provider == CUDA_EP and runner.device.type == "cuda"


def test_device_moves(artifacts: dict[str, Path]) -> None:
    """pt2 and onnx move between devices; an AOTInductor package runs only on the device type it was compiled for,
    and asking for another is one error naming both (checked before any backend or GPU is touched)."""
    for kind in ("pt2", "onnx"):
        manifest = read_manifest(artifacts[kind])
        assert manifest.device == "cpu"
        runtime.loader.check_device(artifacts[kind], manifest, "cuda:1")  # allowed: no error
    aoti = artifacts["aoti"]
    assert read_manifest(aoti).device == "cpu"
    with pytest.raises(LoadError, match=r"aoti artifact was built for cpu and cannot run on cuda.*--device cuda"):
        runtime.load(aoti, device="cuda")
    for engine_kind in ("trt", "trt-rtx"):
        with pytest.raises(LoadError, match="runs on a CUDA GPU only"):
            runtime.loader.check_device(aoti, replace(read_manifest(aoti), kind=engine_kind, device="cuda"), "cpu")


def test_unknown_kind_refused() -> None:
    with pytest.raises(LoadError, match="unknown artifact kind 'tflite'"):
        runtime.runner_class("tflite")


# -- bad inputs: every case, every backend, the backend never reached -------------------------------------------

L1 = 1 * 2 * 2  # tokens of a (1, 3, 1, 28, 28) input


def _pv(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return seeded(*shape, seed=11, dtype=dtype)


def _pos(b: int = 1, t: int = 1, h: int = 2, w: int = 2) -> torch.Tensor:
    return grid_positions(b, t, h, w)


def _with(tensor: torch.Tensor, index: tuple[int, ...], value: float) -> torch.Tensor:
    out = tensor.clone()
    out[index] = value
    return out


# case -> (make inputs, the message: a literal substring, or a tuple of literal substrings in order)
BAD: dict[str, tuple[Callable[[], tuple[Any, Any]], str | tuple[str, ...]]] = {
    "not a tensor": (lambda: ([[0.0]], _pos()), "pixel_values: expected a torch.Tensor or numpy.ndarray, got list"),
    "positions not a tensor": (
        lambda: (_pv(1, 3, 1, 28, 28), [[0, 0, 0]]),
        "patch_positions: expected a torch.Tensor or numpy.ndarray, got list",
    ),
    "rank 3": (lambda: (_pv(3, 28, 28), _pos()), "pixel_values: expected rank 5 (B, 3, T, H, W) or rank 4"),
    "rank 6": (lambda: (_pv(1, 3, 1, 1, 28, 28), _pos()), "got rank 6 with shape (1, 3, 1, 1, 28, 28)"),
    "positions rank 2": (lambda: (_pv(1, 3, 1, 28, 28), _pos()[0]), "patch_positions: expected shape (B, L, 3)"),
    "positions last dim 2": (lambda: (_pv(1, 3, 1, 28, 28), _pos()[..., :2]), "got shape (1, 4, 2)"),
    "4 channels": (lambda: (_pv(1, 4, 1, 28, 28), _pos()), "pixel_values: expected 3 channels (dim 1), got 4"),
    "1 channel": (lambda: (_pv(1, 1, 1, 28, 28), _pos()), "expected 3 channels (dim 1), got 1"),
    "H not multiple of 14": (
        lambda: (_pv(1, 3, 1, 30, 28), _pos()),
        "pixel_values: expected H and W to be positive multiples of 14, got H=30, W=28",
    ),
    "W not multiple of 14": (lambda: (_pv(1, 3, 1, 28, 27), _pos()), "got H=28, W=27"),
    "L too short": (
        lambda: (_pv(1, 3, 1, 28, 28), _pos()[:, :3]),
        "patch_positions: expected L = T*(H/14)*(W/14) = 1*2*2 = 4 rows, got 3",
    ),
    "L too long": (lambda: (_pv(1, 3, 1, 28, 28), _pos(1, 2, 2, 2)), "= 4 rows, got 8"),
    "batch mismatch": (
        lambda: (_pv(1, 3, 1, 28, 28), _pos(b=2)),
        "patch_positions: expected batch 1 (the batch of pixel_values), got 2",
    ),
    "negative position": (
        lambda: (_pv(1, 3, 1, 28, 28), _with(_pos(), (0, 2, 1), -1)),
        "patch_positions: expected non-negative [t, h, w], got minimum -1",
    ),
    "position above 2**24": (
        lambda: (_pv(1, 3, 1, 28, 28), _with(_pos(), (0, 0, 0), 1 << 24)),
        "patch_positions: expected values below 2**24 = 16777216 (RoPE uses them as float32), got maximum 16777216",
    ),
    "float positions": (
        lambda: (_pv(1, 3, 1, 28, 28), _pos().float()),
        "patch_positions: expected an integer tensor (int64, or int32 converted losslessly), got float32",
    ),
    "bool positions": (lambda: (_pv(1, 3, 1, 28, 28), _pos().bool()), ("expected an integer tensor", "got bool")),
    "numpy float positions": (
        lambda: (_pv(1, 3, 1, 28, 28), _pos().numpy().astype(np.float64)),
        ("patch_positions: expected an integer array", "got numpy float64"),
    ),
    "numpy uint64 overflow": (
        lambda: (_pv(1, 3, 1, 28, 28), np.full((1, L1, 3), 2**63, dtype=np.uint64)),
        "patch_positions: values must fit in int64",
    ),
    "empty batch": (
        lambda: (_pv(0, 3, 1, 28, 28), _pos()[:0]),
        "pixel_values: expected a non-empty tensor, got shape (0, 3, 1, 28, 28)",
    ),
    "empty frames": (lambda: (_pv(1, 3, 0, 28, 28), _pos()), "pixel_values: expected a non-empty tensor"),
    "zero height": (lambda: (_pv(1, 3, 1, 0, 28), _pos()), "pixel_values: expected a non-empty tensor"),
    "empty positions": (
        lambda: (_pv(1, 3, 1, 28, 28), _pos()[:, :0]),
        "patch_positions: expected a non-empty tensor, got shape (1, 0, 3)",
    ),
    "NaN": (
        lambda: (_with(_pv(1, 3, 1, 28, 28), (0, 1, 0, 3, 4), float("nan")), _pos()),
        "pixel_values: expected finite values, got 1 NaN and 0 Inf",
    ),
    "Inf": (
        lambda: (_with(_pv(1, 3, 1, 28, 28), (0, 0, 0, 0, 0), float("-inf")), _pos()),
        "expected finite values, got 0 NaN and 1 Inf",
    ),
    "float64": (
        lambda: (_pv(1, 3, 1, 28, 28, dtype=torch.float64), _pos()),
        "pixel_values: expected dtype float32 (the artifact's precision), got float64; cast it first (x.float())",
    ),
    "float16": (lambda: (_pv(1, 3, 1, 28, 28, dtype=torch.float16), _pos()), ("expected dtype float32", "got float16")),
    "bfloat16": (
        lambda: (_pv(1, 3, 1, 28, 28, dtype=torch.bfloat16), _pos()),
        ("expected dtype float32", "got bfloat16"),
    ),
    "uint8 pixels": (lambda: (_pv(1, 3, 1, 28, 28).to(torch.uint8), _pos()), ("expected dtype float32", "got uint8")),
    "numpy float64": (
        lambda: (_pv(1, 3, 1, 28, 28).double().numpy(), _pos()),
        "pixel_values: expected dtype float32 for this float32 artifact, got numpy float64",
    ),
    "batch above profile": (
        lambda: (_pv(5, 3, 1, 28, 28), _pos(b=5)),
        "pixel_values: shape (B=5, T=1, H=28, W=28) is outside the artifact: "
        "batch 5 outside profile 'test-small' range [1, 4]",
    ),
    "frames above profile": (
        lambda: (_pv(1, 3, 5, 14, 28), _pos(1, 5, 1, 2)),
        "frames 5 outside profile 'test-small' range [1, 4]",
    ),
    "height above profile": (
        lambda: (_pv(1, 3, 1, 126, 28), _pos(1, 1, 9, 2)),
        "height 126 outside profile 'test-small' range [14, 112]",
    ),
    "width below profile": (
        lambda: (_pv(1, 3, 1, 28, 14), _pos(1, 1, 2, 1)),
        "width 14 outside profile 'test-small' range [28, 112]",
    ),
    "two axes outside profile": (
        lambda: (_pv(1, 3, 1, 126, 126), _pos(1, 1, 9, 9)),
        ("height 126 outside profile", "; width 126 outside profile"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs(runners: dict[str, Runner], kind: str, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = runners[kind]
    reached: list[bool] = []
    monkeypatch.setattr(runner, "_run", lambda *args: reached.append(True))
    make, message = BAD[case]
    pixel_values, patch_positions = make()
    with pytest.raises(InputError) as info:
        runner(pixel_values, patch_positions)
    text = str(info.value)
    pattern = ".*".join(re.escape(part) for part in ((message,) if isinstance(message, str) else message))
    assert re.search(pattern, text), f"{case}: {text!r} does not contain {message!r}"
    assert "\n" not in text
    assert not reached, f"{kind}: the backend was reached with bad input ({case})"


def test_bad_input_message_names_input_expected_actual() -> None:
    with pytest.raises(InputError) as info:
        check_inputs(_pv(1, 3, 1, 28, 28), _pos()[:, :3], PROFILE, torch.float32)
    text = str(info.value)
    assert text.startswith("patch_positions:") and "expected" in text and "got 3" in text


# -- precision rules (validation only: no artifact needed) --------------------------------------------------------


def test_numpy_float32_feeds_bf16_artifact_rounded() -> None:
    pv = _pv(1, 3, 1, 28, 28)
    out, pos = check_inputs(pv.numpy(), _pos().numpy().astype(np.int32), PROFILE, torch.bfloat16)
    assert out.dtype == torch.bfloat16 and torch.equal(out, pv.to(torch.bfloat16))
    assert pos.dtype == torch.int64
    with pytest.raises(InputError, match=r"expected dtype bfloat16 .* got float32"):
        check_inputs(pv, _pos(), PROFILE, torch.bfloat16)  # torch tensors are never cast
    with pytest.raises(InputError, match=r"expected dtype float32 \(rounded to bfloat16\) .* got numpy float64"):
        check_inputs(pv.double().numpy(), _pos(), PROFILE, torch.bfloat16)


def test_fp16_rule() -> None:
    pv = _pv(1, 3, 1, 28, 28)
    out, _ = check_inputs(pv.half().numpy(), _pos(), PROFILE, torch.float16)
    assert out.dtype == torch.float16
    with pytest.raises(InputError, match=r"expected dtype float16 .* got float32; cast it first \(x.half\(\)\)"):
        check_inputs(pv, _pos(), PROFILE, torch.float16)


# -- artifact integrity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_artifact_refused(artifacts: dict[str, Path], tmp_path: Path, kind: str) -> None:
    path = copy_artifact(artifacts[kind], tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"does not match its manifest .*damaged, truncated or was replaced"):
        runtime.load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_artifact_refused(artifacts: dict[str, Path], tmp_path: Path, kind: str) -> None:
    path = copy_artifact(artifacts[kind], tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ManifestError, match="does not match its manifest"):
        runtime.load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_manifest_refused(artifacts: dict[str, Path], tmp_path: Path, kind: str) -> None:
    path = copy_artifact(artifacts[kind], tmp_path)
    manifest_path(path).unlink()
    with pytest.raises(ManifestError, match=re.escape(f"no manifest {path.name}.json beside it")):
        runtime.load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_artifact_refused(artifacts: dict[str, Path], tmp_path: Path, kind: str) -> None:
    path = copy_artifact(artifacts[kind], tmp_path)
    path.unlink()
    with pytest.raises(ManifestError, match=re.escape(f"artifact {path.name} is missing")):
        runtime.load(path)


def test_manifest_of_another_artifact_refused(artifacts: dict[str, Path], tmp_path: Path) -> None:
    """An artifact swapped under an existing manifest (same name) fails the sha256 check."""
    path = copy_artifact(artifacts["pt2"], tmp_path)
    shutil.copyfile(artifacts["aoti"], path)
    with pytest.raises(ManifestError, match="does not match its manifest"):
        runtime.load(path)


# -- thread safety ------------------------------------------------------------------------------------------------

THREADS, CALLS = 8, 50


@pytest.mark.parametrize("kind", KINDS)
def test_threads_identical_results(runners: dict[str, Runner], kind: str) -> None:
    """8 threads x 50 calls on one runner; each thread cycles through 4 inputs and must get the single-threaded
    result for each, bit for bit (catches shared output buffers and per-thread binding mix-ups)."""
    runner = runners[kind]
    pixels = [seeded(1 + i % 2, 3, 1, 28, 14 * (2 + i // 2), seed=100 + i) for i in range(4)]
    inputs = [(pv, video_positions(pv)) for pv in pixels]
    expected = [runner(pv, pos) for pv, pos in inputs]
    failures: list[str] = []
    barrier = threading.Barrier(THREADS)

    def work(tid: int) -> None:
        barrier.wait()
        for call in range(CALLS):
            k = (tid + call) % len(inputs)
            try:
                out = runner(*inputs[k])
            except Exception as exc:  # report, do not hang the other threads
                failures.append(f"thread {tid} call {call}: {type(exc).__name__}: {exc}")
                return
            if not torch.equal(out, expected[k]):
                failures.append(f"thread {tid} call {call}: differs by {float((out - expected[k]).abs().max())}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not failures, failures[:5]


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_run_and_info(artifacts: dict[str, Path], runners: dict[str, Runner], tmp_path: Path) -> None:
    from runtime.__main__ import main

    pv = seeded(1, 3, 2, 28, 42, seed=21)
    pos = video_positions(pv)
    np.save(tmp_path / "pv.npy", pv.numpy())
    np.save(tmp_path / "pos.npy", pos.numpy().astype(np.int32))
    out = tmp_path / "out.npy"
    argv = ["run", str(artifacts["onnx"]), "--pixel-values", str(tmp_path / "pv.npy")]
    assert main([*argv, "--positions", str(tmp_path / "pos.npy"), "--out", str(out)]) == 0
    assert np.array_equal(np.load(out), runners["onnx"](pv, pos).numpy())
    assert main(["info", str(artifacts["aoti"])]) == 0
    np.save(tmp_path / "bad.npy", pv.double().numpy())
    bad = ["run", str(artifacts["pt2"]), "--pixel-values", str(tmp_path / "bad.npy")]
    assert main([*bad, "--positions", str(tmp_path / "pos.npy"), "--out", str(out)]) == 2
    assert main(["nonsense"]) == 2


# -- onnxruntime: no silent fallback to the CPU (issue: day one, section 4) ---------------------------------------


def _cuda_ep_here() -> bool:
    import onnxruntime as ort

    return CUDA_EP in ort.get_available_providers()


@pytest.mark.skipif(_cuda_ep_here(), reason="this onnxruntime has the CUDA provider: nothing to refuse")
def test_onnx_cuda_session_refused_without_the_cuda_provider(artifacts: dict[str, Path]) -> None:
    """device=cuda with an onnxruntime that lacks the CUDA provider: one clear error, not a CPU session."""
    with pytest.raises(LoadError, match=f"needs onnxruntime's {CUDA_EP}.*install onnxruntime-gpu"):
        create_session(artifacts["onnx"], torch.device("cuda", 0), "fp32")


@pytest.mark.skipif(_cuda_ep_here(), reason="this onnxruntime has the CUDA provider: it would not fall back")
def test_onnx_silent_cpu_fallback_is_refused(artifacts: dict[str, Path]) -> None:
    """onnxruntime asked for the CUDA provider it cannot create falls back to the CPU with a warning only (a real
    session here); the runner's provider check refuses it when CUDA was asked for."""
    import onnxruntime as ort

    with pytest.warns(UserWarning, match=CUDA_EP):
        session = ort.InferenceSession(str(artifacts["onnx"]), providers=[CUDA_EP, CPU_EP])
    assert session.get_providers()[0] == CPU_EP  # what onnxruntime did on its own
    with pytest.raises(LoadError, match=f"onnxruntime created the session on \\['{CPU_EP}'\\].*refusing"):
        check_providers(session, torch.device("cuda", 0), artifacts["onnx"])
    assert check_providers(session, torch.device("cpu"), artifacts["onnx"]) == CPU_EP


def test_onnx_bf16_without_kernels_is_not_supported_by_onnxruntime(tiny_dir: Path, tmp_path: Path) -> None:
    """No bf16 Conv kernel in onnxruntime's CPU (nor CUDA) provider: one 'not supported by onnxruntime' line."""
    path = build("onnx", BuildRequest(tiny_dir, "bf16", [PROFILE], tmp_path, options={"quiet": True})).path
    with pytest.raises(UnsupportedError, match="bf16 ONNX on CPUExecutionProvider: not supported by onnxruntime"):
        runtime.load(path, device="cpu")
