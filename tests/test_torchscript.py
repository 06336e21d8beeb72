"""TorchScript artifacts (issue 14) on the tiny preset: one traced file is right across its whole profile, and a
trace that bakes a shape is caught. (Inputs outside the profile never reach the graph: tests/test_runtime.py's
bad-input cases run against every kind, torchscript included; the C++ runner: tests/test_cpp_runtime.py.)

Tolerances are test_export.py's (MAX_ABS_FP32 1e-4, REL_L2_FP32 1e-5). Measured here: the frozen trace runs eager's
own kernels and matches eager sdpa bit for bit in fp32, bf16 and fp16 at every shape below, so equality is asserted
too.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

import runtime
from contract.dtypes import DTYPES
from contract.manifest import read_manifest
from contract.profiles import PROFILES
from export import BuildRequest, BuildResult, ExportError, build
from export.inputs import example_inputs, inputs_at
from export.torchscript import device_nodes, freeze, trace, trace_shape
from export.wrapper import EncoderExport, load_wrapper

MAX_ABS_FP32 = 1e-4
REL_L2_FP32 = 1e-5
PROFILE = PROFILES["test-small"]  # batch 1..4, frames 1..4, H and W 14..112
# (B, T, H, W): min and max of the profile, non-square, several frames, and every axis away from the traced shape
# (2, 2, 28, 42): batch, frames, height, width and token count (2..256) all vary.
SHAPES = [(1, 1, 14, 28), (4, 4, 112, 112), (3, 1, 28, 98), (2, 3, 70, 42), (1, 4, 14, 42)]


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def request(model_dir: Path, out: Path, precision: str = "fp32", **options: object) -> BuildRequest:
    return BuildRequest(model_dir, precision, [PROFILE], out, options={"quiet": True, **options})


def _inputs(shape: tuple[int, int, int, int], dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded pixels; positions are the grid for even seeds, random [t, h, w] (t up to 63) for odd ones."""
    pv, pos = inputs_at(shape, dtype, 14, seed=seed)
    if seed % 2:
        pos = torch.randint(0, 64, pos.shape, generator=torch.Generator().manual_seed(seed))
    return pv, pos


def across_profile(run: object, eager: EncoderExport, dtype: torch.dtype = torch.float32) -> list[str]:
    """The check a shape-baking trace must fail: run at every shape of SHAPES against eager; one line per failure."""
    failures = []
    for i, shape in enumerate(SHAPES):
        pv, pos = _inputs(shape, dtype, seed=i)
        with torch.no_grad():
            expected = eager(pv, pos)
            try:
                actual = run(pv, pos)  # type: ignore[operator]
            except RuntimeError as exc:
                failures.append(f"{shape}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
        if actual.shape != expected.shape:
            failures.append(f"{shape}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
        elif float((actual - expected).abs().max()) > MAX_ABS_FP32 or rel_l2(actual, expected) > REL_L2_FP32:
            failures.append(f"{shape}: max abs {float((actual - expected).abs().max()):.2e}")
    return failures


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torchscript")


@pytest.fixture(scope="module")
def eager(tiny_dir: Path) -> EncoderExport:
    return load_wrapper(tiny_dir, "fp32", -1)


@pytest.fixture(scope="module")
def built(tiny_dir: Path, out_dir: Path) -> BuildResult:
    return build("torchscript", request(tiny_dir, out_dir))


class BakesTokens(EncoderExport):
    """What a shape-specialised trace looks like: sizes read as Python ints become constants of the trace."""

    def forward(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        out = super().forward(pixel_values, patch_positions)
        return out.reshape(int(patch_positions.shape[0]), int(patch_positions.shape[1]), -1)


class MovesToCpu(torch.nn.Module):
    """A traced `.to(device=...)` records the device as a constant: such a graph could not move."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=torch.device("cpu")) + 1


# -- one traced file, the whole profile ----------------------------------------------------------------------------


def test_one_trace_is_right_across_the_profile(built: BuildResult, eager: EncoderExport) -> None:
    assert trace_shape(PROFILE) == (2, 2, 28, 42) and (2, 2, 28, 42) not in SHAPES
    assert read_manifest(built.path).extra["trace_shape"] == [2, 2, 28, 42]
    runner = runtime.load(built.path)
    assert runner.provider == "torchscript"
    assert across_profile(runner, eager) == []
    for i, shape in enumerate(SHAPES):  # the frozen graph runs eager's own kernels: bit for bit
        pv, pos = _inputs(shape, torch.float32, seed=i)
        with torch.no_grad():
            assert torch.equal(runner(pv, pos), eager(pv, pos)), shape


def test_a_shape_baking_trace_fails_that_check(tiny_dir: Path, eager: EncoderExport) -> None:
    """The same check on a trace that bakes B and L: TracerWarnings at trace time, right only at its example."""
    baked_wrapper = BakesTokens(eager.model).eval()
    example = example_inputs(baked_wrapper, PROFILE)
    baked, warned = trace(baked_wrapper, example)
    assert len(warned) == 2 and all("Python integer" in w for w in warned), warned
    module = freeze(baked)
    with torch.no_grad():
        assert torch.equal(module(*example), eager(*example))  # right at the traced shape...
    failures = across_profile(module, eager)
    assert len(failures) == len(SHAPES), failures  # ...and wrong at every other one


def test_the_builder_refuses_a_trace_that_records_constants(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.torchscript as ts

    monkeypatch.setattr(ts, "load_wrapper", lambda *a: BakesTokens(load_wrapper(*a).model).eval())
    with pytest.raises(ExportError, match=r"recorded 2 Python value\(s\) as constants.*Python integer"):
        build("torchscript", request(tiny_dir, tmp_path))
    assert not list(tmp_path.glob("*.pt*"))  # nothing installed


# -- manifest, device rule, precisions, threads ---------------------------------------------------------------------


def test_manifest_movable_and_forward_names(built: BuildResult, tiny_dir: Path) -> None:
    manifest = read_manifest(built.path)
    assert built.path.name == "torchscript-fp32-test-small.pt" and manifest.kind == "torchscript"
    assert manifest.extra["tracer_warnings"] == [] and manifest.extra["frozen"] is True
    assert manifest.extra["movable"] is True and manifest.build["verify"]["rel_l2"] <= REL_L2_FP32
    # The Triton fields live in one place, serving's pytorch_libtorch config (test_serving checks them).
    assert "triton" not in manifest.extra
    module = torch.jit.load(str(built.path))
    # forward()'s argument names are the manifest's input names (Triton's forward-argument naming)
    assert [a.name for a in module.forward.schema.arguments][1:] == ["pixel_values", "patch_positions"]
    # Movable: the frozen graph names no device, and the check sees one where a traced path has it.
    assert device_nodes(module) == []
    pinned = torch.jit.trace(MovesToCpu(), torch.zeros(2))
    assert any("Device" in node for node in device_nodes(pinned)), device_nodes(pinned)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_match_eager_bit_for_bit(precision: str, tiny_dir: Path, out_dir: Path) -> None:
    result = build("torchscript", request(tiny_dir, out_dir, precision))
    runner = runtime.load(result.path)
    wrapper = load_wrapper(tiny_dir, precision, -1)
    for i, shape in enumerate(SHAPES[:3]):
        pv, pos = _inputs(shape, DTYPES[precision], seed=i)
        with torch.no_grad():
            out = runner(pv, pos)
            assert out.dtype == DTYPES[precision] and torch.equal(out, wrapper(pv, pos)), shape


def test_threads_share_one_runner(built: BuildResult) -> None:
    runner = runtime.load(built.path)
    inputs = [_inputs(SHAPES[i % 3], torch.float32, seed=i) for i in range(4)]
    expected = [runner(pv, pos) for pv, pos in inputs]
    results: dict[tuple[int, int], torch.Tensor] = {}

    def work(k: int) -> None:
        for j in range(5):
            results[(k, j)] = runner(*inputs[(k + j) % 4])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40
    assert all(torch.equal(out, expected[(k + j) % 4]) for (k, j), out in results.items())
