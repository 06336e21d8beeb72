"""fp32 is fp32 (issue: day one, section 3): every comparison path computes without TF32 and restores the caller's
settings. The flags are set ON first, as a GPU process would have them (they can be set on a CPU-only torch), and
observed from inside the real computation by module forward pre-hooks, not from a mocked result."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from contract.profiles import PROFILES
from export import BuildRequest, build
from export.verify import verify_artifact
from export.wrapper import load_wrapper
from models import load_config, weights_sha256
from models.tf32 import _restore, _snapshot, exact_float32, tf32_state
from parity.artifacts import eager_artifact, from_file
from parity.cases import CaseContext, CaseInput, build_case
from parity.references import ReferenceBank
from tests.conftest import seeded

PROFILE = PROFILES["test-small"]
OFF = {"cuda_matmul_allow_tf32": False, "cudnn_allow_tf32": False, "float32_matmul_precision": "highest"}
ON = {"cuda_matmul_allow_tf32": True, "cudnn_allow_tf32": True, "float32_matmul_precision": "high"}


@pytest.fixture
def tf32_on() -> Iterator[dict[str, Any]]:
    """TF32 allowed everywhere (legacy API, as most GPU code sets it); the test's own settings restored after."""
    saved = _snapshot()
    torch.set_float32_matmul_precision("high")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    assert tf32_state() == ON
    try:
        yield ON
    finally:
        _restore(saved)


@pytest.fixture
def seen() -> Iterator[list[dict[str, Any]]]:
    """tf32_state() as every module's forward sees it when it starts (a global forward pre-hook)."""
    observed: list[dict[str, Any]] = []

    def hook(module: torch.nn.Module, args: Any) -> None:
        observed.append(tf32_state())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield observed
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def pt2_fp32(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tf32-artifacts")
    return build("pt2", BuildRequest(tiny_dir, "fp32", [PROFILE], out, options={"quiet": True})).path


def assert_all_off_then_restored(seen: list[dict[str, Any]], before: dict[str, Any]) -> None:
    assert seen, "the computation ran no module"
    assert all(state == OFF for state in seen), [s for s in seen if s != OFF][:2]
    assert tf32_state() == before  # restored


# -- the rule itself --------------------------------------------------------------------------------------------


def _set_legacy_on() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _set_new_api() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"


def _set_mixed() -> None:
    torch.set_float32_matmul_precision("high")
    torch.backends.cuda.matmul.fp32_precision = "ieee"


SETTINGS = {
    "torch defaults": lambda: None,
    "matmul precision high": lambda: torch.set_float32_matmul_precision("high"),
    "matmul precision medium (oneDNN bf16 on the CPU)": lambda: torch.set_float32_matmul_precision("medium"),
    "legacy allow_tf32 flags": _set_legacy_on,
    "new fp32_precision API": _set_new_api,
    "both APIs mixed": _set_mixed,
}


@pytest.mark.parametrize("name", SETTINGS)
def test_exact_float32_turns_everything_off_and_restores_exactly(name: str) -> None:
    saved = _snapshot()
    try:
        if name == "new fp32_precision API" and not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            pytest.skip(f"torch {torch.__version__} has no fp32_precision API")
        SETTINGS[name]()
        before = _snapshot()
        with exact_float32():
            assert tf32_state() == OFF
            with exact_float32():  # nested
                assert tf32_state() == OFF
            assert tf32_state() == OFF
            if hasattr(torch.backends, "mkldnn") and hasattr(torch.backends.mkldnn, "matmul"):
                assert torch.backends.mkldnn.matmul.fp32_precision == "ieee"  # no bf16 fp32-matmuls on the CPU
        assert _snapshot() == before
    finally:
        _restore(saved)


def test_exact_float32_restores_after_an_exception(tf32_on: dict[str, Any]) -> None:
    with pytest.raises(ZeroDivisionError), exact_float32():
        _ = 1 / 0
    assert tf32_state() == tf32_on


# -- every comparison path ----------------------------------------------------------------------------------------


def test_export_verification_runs_without_tf32(tiny_dir: Path, tf32_on: dict[str, Any], seen: list[Any]) -> None:
    wrapper = load_wrapper(tiny_dir, "fp32", -1, "cpu")
    verify_artifact("pt2", lambda pv, pos: wrapper(pv, pos), wrapper, PROFILE, "fp32")
    assert len(seen) >= 2  # the eager side and the "artifact" side
    assert_all_off_then_restored(seen, tf32_on)


def test_parity_references_run_without_tf32(tiny_dir: Path, tf32_on: dict[str, Any], seen: list[Any]) -> None:
    case = build_case("profile-min", CaseContext(PROFILE, 2, 0))
    assert isinstance(case, CaseInput)
    bank = ReferenceBank(tiny_dir, torch.device("cpu"), 3)
    bank.compute([(case, 3)], ["sdpa-fp32", "eager-fp32"])
    assert_all_off_then_restored(seen, tf32_on)
    seen.clear()
    bank.hidden_states(case, 3, "sdpa-fp32")
    assert_all_off_then_restored(seen, tf32_on)


def test_parity_artifact_runs_without_tf32(
    tiny_dir: Path, pt2_fp32: Path, tf32_on: dict[str, Any], seen: list[Any]
) -> None:
    art = from_file(pt2_fp32, load_config(tiny_dir), weights_sha256(tiny_dir), torch.device("cpu"))
    assert art.loader is not None and not art.skip_reason
    pv = seeded(1, 3, 1, 28, 42, seed=1)
    from runtime.positions import image_positions

    out = art.run(pv, image_positions(pv))
    assert out.shape == (1, 6, 128)
    assert_all_off_then_restored(seen, tf32_on)


def test_parity_eager_stand_in_runs_without_tf32(tiny_dir: Path, tf32_on: dict[str, Any], seen: list[Any]) -> None:
    art = eager_artifact(tiny_dir, "fp32", "cpu")
    pv = seeded(1, 3, 1, 28, 28, seed=2)
    from runtime.positions import image_positions

    art.run(pv, image_positions(pv))
    assert_all_off_then_restored(seen, tf32_on)
    seen.clear()
    art.runner.hidden_states(pv, image_positions(pv))
    assert_all_off_then_restored(seen, tf32_on)


@pytest.mark.parametrize("allow", [False, True])
def test_benchmark_eager_baseline_states_and_uses_its_tf32_setting(
    tiny_dir: Path, tf32_on: dict[str, Any], seen: list[Any], allow: bool
) -> None:
    from benchmarks.worker import measure

    args = argparse.Namespace(
        target="eager", model=str(tiny_dir), precision="fp32", device="cpu", workload="tiny-112-b2",
        iters=1, warmup=0, rotate=1, tf32=allow,
    )  # fmt: skip
    result = measure(args)
    expected = ON if allow else OFF
    assert result["tf32"] == expected  # the report states what was timed ...
    assert seen and all(state == expected for state in seen)  # ... and it is what the model ran under
    assert tf32_state() == tf32_on
