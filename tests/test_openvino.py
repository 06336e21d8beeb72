"""The openvino kind: an OpenVINO IR (.xml + .bin) built from the bundle's fp32 ONNX, run on OpenVINO's CPU.

Tiny checkpoint, `test-small`: build (fp32 and bf16 inference precision), manifest and IR agree, runs within the
parity rule against the float64 golden at several shapes, integrity of both files, device refusal, fp16 refusal,
and the parity suite's rows for both precisions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import runtime
from contract.manifest import ManifestError, read_manifest
from contract.profiles import PROFILES
from export import BuildRequest, ExportError, build
from models import InputError, load_model
from models.tf32 import exact_float32
from parity import compare, load_tolerances
from parity.__main__ import main as parity_main
from runtime.base import LoadError
from runtime.positions import grid_positions
from tests.conftest import copy_artifact, seeded

openvino = pytest.importorskip("openvino", reason="the openvino package is not installed (requirements.txt pins it)")

PROFILE = PROFILES["test-small"]
DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def irs(
    tiny_dir: Path, tiny_artifacts_fp32: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The session's fp32 IR (tests/conftest.py) and a bf16 one built here, in one folder of their own."""
    out = tmp_path_factory.mktemp("openvino")
    request = BuildRequest(tiny_dir, "bf16", [PROFILE], out, options={"quiet": True})
    return {"fp32": copy_artifact(tiny_artifacts_fp32["openvino"], out), "bf16": build("openvino", request).path}


@pytest.fixture(scope="module")
def eager(tiny_dir: Path) -> dict[str, Any]:
    return {p: load_model(tiny_dir, d, "sdpa") for p, d in (("fp64", torch.float64), *DTYPE.items())}


def test_manifest_ir_and_files(irs: dict[str, Path]) -> None:
    for precision, path in irs.items():
        manifest = read_manifest(path)
        assert manifest.kind == "openvino" and manifest.precision == precision and path.suffix == ".xml"
        assert [f["path"] for f in manifest.files] == [path.name, path.with_suffix(".bin").name]
        hint = manifest.extra["compile_config"]["INFERENCE_PRECISION_HINT"]
        assert hint == {"fp32": "f32", "bf16": "bf16"}[precision]
        model = openvino.Core().read_model(str(path))
        assert model.get_rt_info(["onevision", "precision"]).astype(str) == precision
        types = {p.get_any_name(): p.get_element_type().get_type_name() for p in [*model.inputs, *model.outputs]}
        float_type = "f32" if precision == "fp32" else "bf16"
        assert types == {"pixel_values": float_type, "patch_positions": "i64", "last_hidden_state": float_type}
        # The profile is in the IR: batch 1..4 (test-small), tokens 2..256.
        assert str(model.input("patch_positions").get_partial_shape()) == "[1..4,2..256,3]"
        assert manifest.build["verify"]["rel_l2"] < manifest.build["verify"]["max_rel_l2"]
        assert runtime.load(path).dtype == DTYPE[precision]  # its provider: test_inference_precision_is_...


SHAPES = [(1, 1, 14, 28), (3, 2, 56, 84), (4, 4, 112, 112)]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_matches_eager_within_the_parity_rule(irs: dict[str, Path], eager: dict[str, Any], precision: str) -> None:
    """Against the float64 golden, k x eager sdpa's own error at that precision (parity/tolerances.json rows
    fp32/fp64 and bf16/fp64), at the profile's min and max and a shape between; random non-grid positions with t up
    to 63 on the middle one."""
    runner = runtime.load(irs[precision])
    rule = load_tolerances()
    for i, (b, t, h, w) in enumerate(SHAPES):
        pv = seeded(b, 3, t, h, w, seed=i)
        pos = grid_positions(b, t, h // 14, w // 14)
        if i == 1:
            gen = torch.Generator().manual_seed(7)
            pos = torch.stack([torch.randint(0, 64, pos.shape[:2], generator=gen)] * 3, -1).contiguous()
        with torch.no_grad(), exact_float32():
            golden = eager["fp64"](pv.double(), patch_positions=pos).last_hidden_state
            own = compare(eager[precision](pv.to(DTYPE[precision]), patch_positions=pos).last_hidden_state, golden)
        out = runner(pv.to(DTYPE[precision]), pos)
        assert out.dtype == DTYPE[precision] and out.shape == (b, pos.shape[1], 128)
        verdict = rule.judge(compare(out, golden), precision, "fp64", (own.rel_l2, own.max_angle), (0.0, 0.0))
        assert verdict.passed, f"{precision} at {(b, t, h, w)}: {verdict.reason}"
        assert verdict.ratio > 0  # a real difference was measured (not the golden compared with itself)


def test_inputs_checked_before_openvino(irs: dict[str, Path]) -> None:
    runner = runtime.load(irs["bf16"])
    pv = seeded(1, 3, 1, 14, 28)
    with pytest.raises(InputError, match="expected dtype bfloat16"):
        runner(pv, grid_positions(1, 1, 1, 2))
    with pytest.raises(InputError, match="batch"):
        runner(seeded(5, 3, 1, 14, 28).bfloat16(), grid_positions(5, 1, 1, 2))


@pytest.mark.parametrize("which", ["xml", "bin"])
def test_damaged_or_missing_file_refused(irs: dict[str, Path], tmp_path: Path, which: str) -> None:
    copy = copy_artifact(irs["fp32"], tmp_path / "damaged")
    target = copy.with_suffix(f".{which}")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=f"{target.name}: sha256 .* does not match"):
        runtime.load(copy)
    target.unlink()
    with pytest.raises(ManifestError, match="is missing") as missing:
        runtime.load(copy)
    assert target.name in str(missing.value)


def test_other_devices_refused_in_one_line(irs: dict[str, Path]) -> None:
    with pytest.raises(LoadError) as info:
        runtime.load(irs["fp32"], device="cuda")
    text = str(info.value)
    assert "\n" not in text and "cannot run on cuda" in text and "OpenVINO's CPU device" in text


def test_fp16_refused(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="openvino: precision fp16 is not built"):
        build("openvino", BuildRequest(tiny_dir, "fp16", [PROFILE], tmp_path, options={"quiet": True}))
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_parity_rows(tiny_dir: Path, irs: dict[str, Path], tmp_path: Path) -> None:
    """The parity suite takes both IRs like any artifact: each row judged by its precision's rule, all passing."""
    folder = irs["fp32"].parent
    argv = ["--model", str(tiny_dir), "--artifacts-dir", str(folder), "--cases", "codec-packed"]
    code = parity_main([*argv, "--results-dir", str(tmp_path), "--name", "ov", "--no-progress"])
    report = json.loads((tmp_path / "ov" / "report.json").read_text())
    arts = {a["name"]: a for a in report["artifacts"]}
    assert code == 0 and {a["status"] for a in arts.values()} == {"PASS"}
    assert set(arts) == {"openvino-fp32-test-small.xml", "openvino-bf16-test-small.xml"}
    rows = [r for r in report["results"] if r["status"] == "pass"]
    assert {r["artifact"] for r in rows} == set(arts)
    assert {r["reference"] for r in rows} >= {"golden-fp64", "sdpa-fp32", "sdpa-bf16"}
    # bf16 IRs are judged by the bf16 rows (bf16/fp64 against the golden: k 2, floor 1e-3), fp32 IRs by fp32's.
    rules = load_tolerances()
    for row in (r for r in rows if r["reference"] == "golden-fp64"):
        rule = rules.rule("bf16" if "-bf16-" in row["artifact"] else "fp32", "fp64")
        e = max(row["inherent_artifact"][0], row["inherent_reference"][0])
        assert row["verdict"]["bound_rel_l2"] == pytest.approx(rule.k_rel_l2 * e + rule.floor_rel_l2)


def _with_config(artifact: Path, folder: Path, **config: str) -> Path:
    """A copy of an IR whose manifest compiles it with extra CPU-plugin settings (the runner passes the manifest's
    compile_config to OpenVINO as it is)."""
    copy = copy_artifact(artifact, folder)
    mpath = copy.with_name(copy.name + ".json")
    data = json.loads(mpath.read_text())
    data["extra"]["compile_config"].update(config)
    mpath.write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize(
    "variant",
    [
        "bf16",  # a bf16 IR: attention fused into one Subgraph named after sdpa (AVX-512 BF16/AMX CPUs)
        "fp32",  # an fp32 IR: the same fused Subgraph is named after a Transpose (what any CPU runs in f32)
        "bf16-unfused",  # attention not fused (SNIPPETS_MODE=DISABLE): separate MatMul and Softmax nodes
    ],
)
def test_op_times_name_the_kernels(irs: dict[str, Path], tmp_path: Path, variant: str) -> None:
    """OpenVINO's performance counters, as benchmarks/op_profile.py reads them: the linear layers and attention are
    there, with their time, whether OpenVINO fused attention into a Subgraph (named after whatever it likes) or
    left MatMul/Softmax nodes (as it does without AVX-512); the kernels run in the precision OpenVINO reports."""
    from benchmarks.op_profile import node_class

    precision = variant.split("-")[0]
    path = irs[precision]
    if variant.endswith("unfused"):
        path = _with_config(path, tmp_path / "unfused", SNIPPETS_MODE="DISABLE")
    runner = runtime.load(path)
    pv = seeded(2, 3, 1, 112, 112).to(DTYPE[precision])
    nodes = runner.op_times(pv, grid_positions(2, 1, 8, 8))
    seconds: dict[str, float] = {}
    for node in nodes:
        seconds[node_class(node)] = seconds.get(node_class(node), 0.0) + node["seconds"]
    assert seconds.get("linear", 0) > 0 and seconds.get("attention", 0) > 0, seconds
    types = {n["type"] for n in nodes}
    assert ({"MatMul", "Softmax"} <= types) if variant.endswith("unfused") else ("Subgraph" in types), types
    assert all(runner.inference_precision in n["exec_type"] for n in nodes if n["type"] == "FullyConnected")


def test_inference_precision_is_what_the_cpu_computes(irs: dict[str, Path]) -> None:
    """A bf16 IR computes in bf16 only where the CPU has native bf16 (OpenVINO lists BF16 among the CPU's
    OPTIMIZATION_CAPABILITIES), in f32 elsewhere; the runner reads it back instead of assuming it."""
    native_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = {"fp32": "f32", "bf16": "bf16" if native_bf16 else "f32"}
    for precision, path in irs.items():
        runner = runtime.load(path)
        assert runner.inference_precision == expected[precision]
        assert runner.provider == f"openvino-CPU-{expected[precision]}"


def test_export_all_converts_the_onnx_it_just_built(tiny_dir: Path, tmp_path: Path) -> None:
    """`export all` hands OpenVINO the fp32 ONNX artifact it has just built (its description: from_onnx="fp32"), so
    the graph is exported once, not twice; the IR's manifest names that artifact."""
    from export.__main__ import main

    args = ["all", "--model", str(tiny_dir), "--profile", "test-small", "--out", str(tmp_path), "--quiet"]
    assert main([*args, "--kinds", "onnx,openvino"]) == 0
    onnx_manifest = read_manifest(tmp_path / "onnx-fp32-test-small.onnx")
    facts = read_manifest(tmp_path / "openvino-fp32-test-small.xml").extra["onnx"]
    assert facts["built"] is False and facts["sha256"] == onnx_manifest.sha256
    assert facts["path"] == str(tmp_path / "onnx-fp32-test-small.onnx")
