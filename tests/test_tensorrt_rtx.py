"""TensorRT-RTX for real on every machine: its ONNX parser on every exported graph, engines built ahead of time
without a GPU, manifests as the built network reports them, and the runtime's one-line refusal where no GPU the
engine targets is present. Tiny preset only (the full-size figures are in the README, measured by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

import runtime
from contract.profiles import PROFILES
from export.base import BuildRequest, ExportError
from export.onnx_model import union_profile, write_onnx
from export.trt_engine import TensorRTBuilder, TensorRTRTXBuilder, parse_targets
from export.trt_parse import TensorRTParseError, parse_onnx
from runtime.backends.tensorrt import TRT_RTX, runnable_here, version_mismatch

ROOT = Path(__file__).resolve().parents[1]
NO_RTX = TRT_RTX.unavailable()
pytestmark = pytest.mark.skipif(NO_RTX is not None, reason=f"TensorRT-RTX is not installed here: {NO_RTX}")
NAMED = list(PROFILES.values())
TRT_TYPES = {"fp32": "FLOAT", "bf16": "BF16", "fp16": "HALF"}
PRECISIONS = list(TRT_TYPES)


@pytest.fixture(scope="module")
def graphs(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """precision -> the tiny model's ONNX graph, dynamic over the union of every named profile (what one engine with
    every named profile as an optimisation profile is built from)."""
    out = tmp_path_factory.mktemp("onnx")
    union = union_profile(NAMED)
    return {
        precision: write_onnx(
            BuildRequest(tiny_dir, precision, NAMED, out, options={"quiet": True}),
            out / f"model-{precision}.onnx",
            profile=union,
        ).path
        for precision in PRECISIONS
    }


@pytest.mark.parametrize("precision", PRECISIONS)
def test_parser_accepts_every_exported_graph(graphs: dict[str, Path], precision: str) -> None:
    parsed = parse_onnx(graphs[precision])
    io = {t["name"]: t for t in parsed.inputs() + parsed.outputs()}
    assert io["pixel_values"] == {"name": "pixel_values", "dtype": TRT_TYPES[precision], "shape": [-1, 3, -1, -1, -1]}
    assert io["patch_positions"] == {"name": "patch_positions", "dtype": "INT64", "shape": [-1, -1, 3]}
    assert io["last_hidden_state"]["dtype"] == TRT_TYPES[precision]
    # TensorRT-friendly: LayerNorm arrives as TensorRT's normalization layer (not decomposed into reductions), and
    # attention as MatMul-Softmax-MatMul, the pattern its fused-attention pass matches (3 layers in the tiny model).
    types = parsed.layer_types
    layers = 3
    assert types["NORMALIZATION"] == 2 * layers + 1 and types["SOFTMAX"] == layers, types
    # The patch embedding: a convolution in fp32/fp16; in bf16 a matrix multiply over the flattened patches (opset
    # 20 has no bf16 Conv), so one more of those and no convolution.
    convolutions = 0 if precision == "bf16" else 1
    assert types["MATRIX_MULTIPLY"] >= 2 * layers + 1 - convolutions and types.get("CONVOLUTION", 0) == convolutions
    assert "REDUCE" not in types, types
    # ... and both compute in the graph's own precision (an fp32 island around softmax/LayerNorm would split the
    # fused kernels and cost the bf16/fp16 speed): what each such layer reads and writes, as the network reports it.
    network = parsed.network
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type.name in ("SOFTMAX", "NORMALIZATION", "MATRIX_MULTIPLY", "CONVOLUTION"):
            dtypes = {layer.get_input(0).dtype.name, layer.get_output(0).dtype.name}
            assert dtypes == {TRT_TYPES[precision]}, (layer.name, layer.type.name, dtypes)


def _planted(graph: Path, tmp_path: Path) -> Path:
    model = onnx.load(str(graph))
    model.graph.node.append(helper.make_node("Unique", ["patch_positions"], ["uniq"], name="planted_unique"))
    model.graph.output.append(helper.make_tensor_value_info("uniq", TensorProto.INT64, None))
    path = tmp_path / "planted.onnx"
    onnx.save(model, str(path))
    return path


def test_parse_error_names_the_node(graphs: dict[str, Path], tmp_path: Path) -> None:
    path = _planted(graphs["fp32"], tmp_path)
    with pytest.raises(TensorRTParseError) as info:
        parse_onnx(path)
    message = str(info.value)
    assert "node 'planted_unique' (Unique, #" in message and "UNSUPPORTED_NODE" in message and "\n" not in message
    cli = [sys.executable, "-m", "export.trt_parse", str(graphs["fp32"]), str(path)]
    result = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "layers; pixel_values FLOAT [-1, 3, -1, -1, -1], patch_positions INT64" in result.stdout
    assert "error: TensorRT-RTX's ONNX parser rejected planted.onnx at node 'planted_unique'" in result.stderr


@pytest.mark.parametrize("precision", PRECISIONS)
def test_engine_with_every_named_profile_builds_without_gpu(
    tiny_dir: Path, graphs: dict[str, Path], tmp_path: Path, precision: str
) -> None:
    """One engine, every named profile an optimisation profile, built here; then runtime.load refuses in one line."""
    request = BuildRequest(tiny_dir, precision, NAMED, tmp_path, options={"quiet": True})
    # The ONNX graph is reused through the internal hook, so the test pays one export per precision, not two.
    builder = TensorRTRTXBuilder()
    builder._onnx = lambda ctx, opts: (graphs[precision], {"path": str(graphs[precision]), "built": False})  # type: ignore[method-assign]
    result = builder.build(request)
    manifest = result.manifest
    assert manifest.kind == "trt-rtx" and manifest.device == "cuda" and result.path.stat().st_size > 0
    rtx = manifest.extra["tensorrt"]
    assert rtx["api"] == "TensorRT-RTX" and rtx["version"] == TRT_RTX.version()
    assert rtx["targets"] == ["8.6", "8.9", "12.0"] and len(rtx["profiles"]) == len(NAMED)
    assert manifest.tools["tensorrt-rtx-cu12-bindings"] == manifest.tools["tensorrt-rtx-cu12-libs"] == rtx["version"]
    io = {t["name"]: t for t in manifest.extra["engine_io"]}
    assert io["pixel_values"]["dtype"] == TRT_TYPES[precision] and io["patch_positions"]["dtype"] == "INT64"
    assert io["last_hidden_state"]["dtype"] == TRT_TYPES[precision] and io["last_hidden_state"]["mode"] == "output"
    assert len(io["pixel_values"]["profiles"]) == len(NAMED)
    assert io["pixel_values"]["profiles"][0] == [
        list(PROFILES["image-448"].shapes(w)["pixel_values"]) for w in ("min", "opt", "max")
    ]
    assert manifest.extra["network"]["layers"] > 0
    assert manifest.build["verify"] == {"run": False, "reason": runnable_reason()}
    assert manifest.profile["width"]["max"] == max(p.width.max for p in NAMED)  # the union
    if not torch.cuda.is_available():
        with pytest.raises(runtime.LoadError) as info:
            runtime.load(result.path)
        message = str(info.value)
        assert "no CUDA GPU" in message and "compute capability 8.6/8.9/12.0" in message and "\n" not in message


def runnable_reason() -> str | None:
    return TensorRTRTXBuilder().runnable({"tensorrt": {"targets": ["8.6", "8.9", "12.0"]}})


def test_cli_builds_two_profiles_and_targets(tiny_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cmd = [sys.executable, "-m", "export", "trt-rtx", "--model", str(tiny_dir), "--precision", "fp16", "--quiet"]
    cmd += ["--profile", "test-small", "--profile", "image-any", "--out", str(tmp_path)]
    cmd += ["--option", "targets=8.9,12.0", "--option", f"timing_cache={cache}"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    engine = tmp_path / "trt-rtx-fp16-test-small+image-any.engine"  # named after every profile it holds, as trt's
    manifest = json.loads((tmp_path / (engine.name + ".json")).read_text())
    assert manifest["extra"]["tensorrt"]["targets"] == ["8.9", "12.0"] and cache.is_file()
    assert [p["name"] for p in manifest["extra"]["tensorrt"]["profiles"]] == ["test-small", "image-any"]
    assert manifest["profile"]["name"] == "test-small+image-any"


def test_targets_option_is_checked(tiny_dir: Path, tmp_path: Path) -> None:
    assert parse_targets("12.0, 8.6") == ["8.6", "12.0"] and parse_targets(["7.5"]) == ["7.5"]
    with pytest.raises(ExportError, match=r"9\.0 is not a TensorRT-RTX compute capability"):
        parse_targets("8.6,9.0")
    with pytest.raises(ExportError, match="option targets is for trt-rtx"):
        TensorRTBuilder().build(
            BuildRequest(tiny_dir, "fp32", [PROFILES["test-small"]], tmp_path, options={"targets": 8.9})
        )


def test_refusal_names_an_unsupported_gpu(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision, for a GPU this machine does not have: a Hopper H100 (9.0) is no TensorRT-RTX target."""
    from contract.manifest import Manifest

    manifest = Manifest("trt-rtx", "e.engine", "", "fp32", "cuda", PROFILES["test-small"].to_dict(), -1, {}, [], [])
    manifest.extra = {"tensorrt": {"targets": ["8.6", "8.9", "12.0"], "version": TRT_RTX.version()}}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H100 80GB HBM3")
    reason = runnable_here(TRT_RTX, manifest, torch.device("cuda", 0))
    assert reason == (
        "NVIDIA H100 80GB HBM3 has compute capability 9.0; this TensorRT-RTX engine was built for 8.6/8.9/12.0 "
        "(rebuild with --option targets=9.0 if TensorRT-RTX supports it)"
    )
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 9))
    assert runnable_here(TRT_RTX, manifest, torch.device("cuda", 0)) is None
    manifest.extra["tensorrt"]["version"] = "1.0.0.1"  # another version: the machine is fine, the engine is not
    assert runnable_here(TRT_RTX, manifest, torch.device("cuda", 0)) is None
    assert "built with TensorRT-RTX 1.0.0.1" in str(version_mismatch(TRT_RTX, manifest))


def test_tensorrt_runner_does_not_import_the_export_toolchain() -> None:
    """runtime -> export.trt_engine -> runtime was a cycle; the runner needs neither the builder nor ONNX."""
    code = (
        "import sys, runtime, runtime.backends.tensorrt as t; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxscript') or m in "
        "('export.trt_engine', 'export.trt_parse', 'export.onnx_model', 'export.trace', 'export.pipeline')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_runtime_module_imports_the_builders() -> None:
    """Statically, imports inside functions included (the old cycle was a lazy `from export.trt_engine import`)."""
    import ast

    toolchain = ("export.trt_engine", "export.trt_parse", "export.onnx_model", "export.trace", "export.pipeline")
    found = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(toolchain)]
    assert found == []


@pytest.mark.parametrize("precision", PRECISIONS)
def test_parser_accepts_the_full_width_graph(tiny_dir: Path, tmp_path: Path, precision: str) -> None:
    """The full-size architecture's widths (hidden 1024, 16 heads, MLP 4096) with random weights and 2 of its 24
    identical layers, so CI pays seconds, not the 24-layer export (measured by hand: README, TensorRT-RTX)."""
    from contract.dtypes import DTYPES
    from export.wrapper import EncoderExport
    from models import OneVisionEncoderConfig, OneVisionEncoderModel
    from models.synthetic import PRESETS

    config = OneVisionEncoderConfig(**{**PRESETS["full"], "num_hidden_layers": 2})
    torch.manual_seed(0)
    model = OneVisionEncoderModel(config).to(DTYPES[precision]).eval().requires_grad_(False)
    request = BuildRequest(tiny_dir, precision, [PROFILES["image-448"]], tmp_path, options={"quiet": True})
    path = write_onnx(request, tmp_path / f"full-width-{precision}.onnx", wrapper=EncoderExport(model)).path
    parsed = parse_onnx(path)
    io = {t["name"]: t for t in parsed.inputs() + parsed.outputs()}
    assert io["pixel_values"]["dtype"] == TRT_TYPES[precision] and io["patch_positions"]["dtype"] == "INT64"
    assert io["last_hidden_state"]["shape"][-1] == 1024 and io["last_hidden_state"]["dtype"] == TRT_TYPES[precision]
    assert parsed.layer_types["NORMALIZATION"] == 2 * 2 + 1 and parsed.layer_types["SOFTMAX"] == 2
