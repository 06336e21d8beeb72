"""The parity suite's references under constraints: a memory bound (large cases a few samples at a time, a case that
does not fit reported on its own rows), a disk cache keyed by everything a reference depends on, bf16 references
limited where the CPU makes them slow, `--run-on`, and which load errors skip (this machine lacks something) and
which fail (the artifact or the install is broken)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from contract.manifest import manifest_path, read_manifest, write_manifest
from parity import SuiteConfig, eager_artifact, load_tolerances, run_suite
from parity.__main__ import limited_references, main
from parity.artifacts import from_file
from parity.cases import CaseContext, CaseInput, build_case
from parity.references import GOLDEN, REFERENCES, ReferenceBank, attention_bytes
from tests.conftest import Available, copy_artifact

MIB = 2**20


def _config(tiny_dir: Path, tmp_path: Path, cases: list[str], **kw: object) -> SuiteConfig:
    return SuiteConfig(
        model_dir=tiny_dir, device=torch.device("cpu"), references=["sdpa-fp32", "sdpa-bf16"], cases=cases,
        tolerances=load_tolerances(), out_dir=tmp_path / "out", progress=False, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _case(name: str) -> CaseInput:
    built = build_case(name, CaseContext(None, min_tokens=1))
    assert isinstance(built, CaseInput)
    return built


def test_large_cases_run_a_few_samples_at_a_time(tiny_dir: Path) -> None:
    """The float64 golden materialises attention (no fused kernel takes float64): over the memory budget, a batch
    runs in chunks, and the chunks give the whole batch's reference (float64 rounding apart)."""
    case = _case("image-batch")  # 4 x 1024 tokens: 2 heads x 1024^2 x 8 bytes x 2 = 32 MiB a sample
    per_sample = attention_bytes(REFERENCES[GOLDEN], 2, 1024)
    assert per_sample == 32 * MIB
    whole = ReferenceBank(tiny_dir, torch.device("cpu"), 3, memory_budget=1 << 40)
    chunked = ReferenceBank(tiny_dir, torch.device("cpu"), 3, memory_budget=2 * per_sample + MIB)  # 2 at a time
    for bank in (whole, chunked):
        bank.compute([(case, 3)], [GOLDEN])
    a, b = whole.get(case, 3, GOLDEN), chunked.get(case, 3, GOLDEN)
    assert a is not None and b is not None and a.shape == b.shape == (4, 1024, 128)
    assert float((a - b).norm() / a.norm()) < 1e-12


def test_a_case_that_does_not_fit_is_an_error_on_its_own_rows(tiny_dir: Path, tmp_path: Path) -> None:
    """A reference that cannot fit one sample in the budget errors the rows of that case, naming the memory; the
    other cases are judged as usual (before, an out-of-memory error ended the whole suite)."""
    cfg = _config(tiny_dir, tmp_path, ["image-448", "one-patch"], reference_memory_gib=16 / 1024)  # 16 MiB
    res = run_suite(cfg, [eager_artifact(tiny_dir, "fp32", "cpu")])
    by_case = {r.case: r for r in res.rows}
    assert by_case["image-448"].status == "error"
    assert "golden-fp64 does not fit memory for image-448" in by_case["image-448"].reason
    assert (
        "needs ~0.0 GiB" not in by_case["image-448"].reason and "--reference-memory-gib" in by_case["image-448"].reason
    )
    assert {r.status for r in res.rows if r.case == "one-patch"} == {"pass"}


def test_references_come_back_from_the_cache_and_only_for_the_same_code(tiny_dir: Path, tmp_path: Path) -> None:
    """A second run reads every reference back (same weights, code, input, torch, device) and judges identically;
    the same weights with another config.json are computed again."""
    cases = ["image-nonsquare", "random-positions"]
    first = run_suite(_config(tiny_dir, tmp_path, cases, reference_cache=tmp_path / "cache"), [_stand_in(tiny_dir)])
    assert first.info["reference_cache"]["hits"] == 0
    second = run_suite(_config(tiny_dir, tmp_path, cases, reference_cache=tmp_path / "cache"), [_stand_in(tiny_dir)])
    assert second.info["reference_cache"]["hits"] == len(cases) * 3  # golden, sdpa-fp32, sdpa-bf16
    assert [r.metrics.to_dict() for r in first.rows if r.metrics] == [
        r.metrics.to_dict() for r in second.rows if r.metrics
    ]
    other = tmp_path / "other-config"
    shutil.copytree(tiny_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "rope_theta": config["rope_theta"] * 2}))
    third = run_suite(_config(other, tmp_path, cases, reference_cache=tmp_path / "cache"), [_stand_in(other)])
    assert third.info["reference_cache"]["hits"] == 0


def _stand_in(model_dir: Path) -> object:
    return eager_artifact(model_dir, "fp32", "cpu")


def test_bf16_references_limited_where_bf16_is_slow(tiny_dir: Path, tmp_path: Path) -> None:
    """Where bf16 is slow (a full-size model on a CPU without native bf16), the bf16 references an fp32 artifact does
    not need are computed on the first case only, and the rows of the other cases say why; a bf16 artifact's own
    calibration (sdpa-bf16) is never limited."""
    fp32, bf16 = eager_artifact(tiny_dir, "fp32", "cpu"), eager_artifact(tiny_dir, "bf16", "cpu")
    refs, cases = ["sdpa-fp32", "sdpa-bf16", "eager-bf16"], ["image-nonsquare", "random-positions"]
    assert limited_references(refs, cases, [fp32], slow_bf16=False) == ({}, [])
    limited, notes = limited_references(refs, cases, [fp32], slow_bf16=True)
    assert set(limited) == {"sdpa-bf16", "eager-bf16"} and all(v[0] == {"image-nonsquare"} for v in limited.values())
    assert "no native bf16" in notes[0]
    assert set(limited_references(refs, cases, [fp32, bf16], slow_bf16=True)[0]) == {"eager-bf16"}
    res = run_suite(_config(tiny_dir, tmp_path, cases, limited_references=limited), [fp32])
    rows = {(r.case, r.reference): r for r in res.rows}
    assert rows[("image-nonsquare", "sdpa-bf16")].status == "pass"
    skipped = rows[("random-positions", "sdpa-bf16")]
    assert skipped.status == "skipped" and skipped.reason.startswith("computed on image-nonsquare only")
    assert rows[("random-positions", "golden-fp64")].status == "pass"


def test_run_on_moves_only_kinds_that_move(tiny_artifacts_fp32: Available[Path], tiny_dir: Path) -> None:
    from models import load_config, weights_sha256

    config, sha = load_config(tiny_dir), weights_sha256(tiny_dir)
    onnx = from_file(tiny_artifacts_fp32["onnx"], config, sha, torch.device("cuda"), {"onnx": "cpu"})
    assert onnx.device == "cpu" and onnx.skip_reason is None
    assert main(["--model", str(tiny_dir), "--run-on", "aoti=cpu", "--no-progress"]) == 2


def test_a_broken_artifact_fails_where_a_missing_capability_skips(
    tiny_dir: Path, tiny_artifacts_fp32: Available[Path], tmp_path: Path
) -> None:
    """An ONNX file onnxruntime cannot parse (its manifest rewritten to match, so the integrity check passes) is an
    error, not a skip: the backend is installed and refuses it. (A bf16 ONNX, which onnxruntime has no kernels for,
    stays a skip saying so: tests/test_parity.py.)"""
    copy = copy_artifact(tiny_artifacts_fp32["onnx"], tmp_path / "broken")
    copy.write_bytes(b"not an onnx model" * 100)
    manifest = read_manifest(copy, verify=False)
    manifest.files = manifest.files[:1]
    write_manifest(copy, manifest, side_files=[])
    assert manifest_path(copy).is_file()
    cfg = _config(tiny_dir, tmp_path, ["image-nonsquare"])
    from models import load_config, weights_sha256

    art = from_file(copy, load_config(tiny_dir), weights_sha256(tiny_dir), torch.device("cpu"))
    res = run_suite(cfg, [art])
    assert res.failed and art.error and art.error.startswith("does not load: LoadError") and art.skip_reason is None
