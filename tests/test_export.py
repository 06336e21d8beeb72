"""Export builders (issue: torch.export, AOTInductor and ONNX artifacts) on the tiny preset.

Every artifact is loaded through its manifest and run against the eager sdpa model at shapes other than the export
example (the profile's min and max, non-square, several frames), so the dynamic axes are really dynamic.

fp32 tolerances: measured on this machine at the shapes below (two seeds each), ONNX Runtime reaches max abs
8.1e-6 / rel L2 9.9e-7 and AOTInductor 4.3e-6 / 5.4e-7 against eager (both reorder float reductions: fused
LayerNorm/GELU kernels, other GEMM blocking; outputs are O(5)); the pt2 program runs eager's own kernels and matches
bit for bit. MAX_ABS_FP32 = 1e-4 and REL_L2_FP32 = 1e-5 leave ~10x headroom over those measurements and stay far
below the difference of a wrong graph (the last and penultimate layers differ by rel L2 > 0.05).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from contract.backends import BACKENDS
from contract.manifest import ManifestError, file_sha256, read_manifest
from contract.profiles import PROFILES, ProfileError, Range, ShapeProfile
from export import BuildRequest, BuildResult, ExportError, build
from export.__main__ import main
from export.aoti import default_inductor_configs
from export.artifact import artifact_name
from export.device_free import device_nodes, make_device_free
from export.inputs import example_shape, inputs_at
from export.onnx_model import dead_nodes, onnx_for_tensorrt
from export.trace import dynamic_shapes
from export.wrapper import EncoderExport, load_wrapper
from models import load_model, weights_sha256
from tests.conftest import Available, copy_artifact

MAX_ABS_FP32 = 1e-4
REL_L2_FP32 = 1e-5
PROFILE = PROFILES["test-small"]
# (B, T, H, W): the profile's min and max, non-square single frames, a 3-frame non-square clip.
SHAPES = [(1, 1, 14, 28), (4, 4, 112, 112), (3, 1, 28, 98), (2, 3, 70, 42)]
Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def request(model_dir: Path, out: Path, precision: str = "fp32", **kwargs: Any) -> BuildRequest:
    return BuildRequest(model_dir, precision, [PROFILE], out, options={"quiet": True}, **kwargs)


def load_runner(path: Path) -> Runner:
    """Load an artifact the way a deployment does: through its manifest (sha256 checked)."""
    manifest = read_manifest(path)
    if manifest.kind == "pt2":
        module = torch.export.load(path).module()
        return lambda pv, pos: module(pv, pos)
    if manifest.kind == "aoti":
        return torch._inductor.aoti_load_package(str(path))
    if manifest.kind == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i["name"] for i in manifest.inputs]

        def run(pv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {names[0]: pv.numpy(), names[1]: pos.numpy()})[0])

        return run
    raise AssertionError(manifest.kind)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def eager(tiny_dir: Path) -> EncoderExport:
    return load_wrapper(tiny_dir, "fp32", -1)


@pytest.fixture(scope="module")
def built(tiny_artifacts_fp32: Available[Path], out_dir: Path) -> dict[str, BuildResult]:
    """fp32 pt2, AOTInductor and ONNX artifacts of test-small: the session's shared ones (tests/conftest.py, built by
    `export.build` with this module's request), copied into out_dir with their manifests."""
    results = {}
    for kind in ("pt2", "aoti", "onnx"):
        path = copy_artifact(tiny_artifacts_fp32[kind], out_dir)
        manifest = read_manifest(path)
        results[kind] = BuildResult(kind, path, manifest, manifest.build["seconds"], manifest.build["peak_rss_mib"])
    return results


# -- profiles and the export recipe ------------------------------------------------------------------------------


def test_profile_needs_two_tokens() -> None:
    one = Range(14, 14, 28)
    with pytest.raises(ProfileError, match=r"1 token\(s\).*>= 2.*specialised"):
        ShapeProfile("one-patch", Range(1, 1, 2), Range(1, 1, 1), one, one)
    assert PROFILE.tokens("min") == 2
    assert all(p.tokens("min") >= 2 for p in PROFILES.values())


def test_static_axes_get_no_dim_and_examples_avoid_size_one() -> None:
    image = PROFILES["image-448"]  # only the batch is dynamic
    shapes = dynamic_shapes(image)
    assert list(shapes["pixel_values"]) == [0] and list(shapes["patch_positions"]) == [0]
    assert example_shape(image) == (8, 1, 448, 448)
    b, t, h, w = example_shape(PROFILE)
    assert min(b, t, h // 14, w // 14) >= 2 and not PROFILE.violations(b, t, h, w)


def test_artifact_names() -> None:
    assert artifact_name("onnx", "fp32", [PROFILES["image-448"]]) == "onnx-fp32-image-448.onnx"
    assert artifact_name("pt2", "bf16", [PROFILE], -2, 24) == "pt2-bf16-test-small-L23.pt2"
    assert artifact_name("pt2", "bf16", [PROFILE], 23, 24) == "pt2-bf16-test-small-L23.pt2"
    assert artifact_name("pt2", "fp32", [PROFILE], 24, 24) == "pt2-fp32-test-small.pt2"
    assert artifact_name("trt", "fp16", [PROFILE, PROFILES["image-448"]]) == "trt-fp16-test-small+image-448.engine"


# -- fp32 artifacts against eager ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["pt2", "aoti", "onnx"])
def test_fp32_artifact_matches_eager(
    kind: str, shape: tuple[int, int, int, int], built: dict[str, BuildResult], eager: EncoderExport
) -> None:
    run = load_runner(built[kind].path)
    pv, pos = inputs_at(shape, torch.float32, 14, seed=7)
    with torch.no_grad():
        expected = eager(pv, pos)
        actual = run(pv, pos)
    b, t, h, w = shape
    assert actual.shape == (b, t * (h // 14) * (w // 14), 128) and actual.dtype == torch.float32
    assert float((actual - expected).abs().max()) <= MAX_ABS_FP32
    assert rel_l2(actual, expected) <= REL_L2_FP32
    if kind == "pt2":  # the program runs eager's own kernels
        assert torch.equal(actual, expected)


def test_pt2_refuses_shapes_outside_its_profile(built: dict[str, BuildResult]) -> None:
    run = load_runner(built["pt2"].path)
    pv, pos = inputs_at((5, 1, 28, 28), torch.float32, 14)  # batch 5 > max 4
    with pytest.raises(Exception, match=r"size\(\)\[0\] <= 4"):
        run(pv, pos)


def test_manifests(built: dict[str, BuildResult], tiny_dir: Path) -> None:
    for kind, result in built.items():
        manifest = read_manifest(result.path)  # verifies the sha256
        assert manifest.sha256 == file_sha256(result.path)
        assert (manifest.kind, manifest.precision, manifest.device, manifest.output_layer) == (kind, "fp32", "cpu", -1)
        assert manifest.path == result.path.name == f"{kind}-fp32-test-small{result.path.suffix}"
        assert manifest.profile == PROFILE.to_dict()
        assert manifest.source["weights_sha256"] == weights_sha256(tiny_dir)
        assert manifest.source["config"]["hidden_size"] == 128
        assert manifest.inputs == [
            {"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, "frames", "height", "width"]},
            {"name": "patch_positions", "dtype": "int64", "shape": ["batch", "tokens", 3]},
        ]
        assert manifest.outputs == [
            {"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "tokens", 128]}
        ]
        assert {"python", "torch", "onnx"} <= set(manifest.tools)
        assert manifest.build["seconds"] > 0 and manifest.build["peak_rss_mib"] > 100
        assert manifest.build["verify"]["shape"] == [1, 1, 14, 28]
        assert manifest.build["verify"]["rel_l2"] <= REL_L2_FP32
        assert manifest.extra["layers_run"] == 3
    assert built["aoti"].manifest.extra["requires_torch"] == torch.__version__


def test_aoti_prepacks_weights_only_on_avx512(built: dict[str, BuildResult]) -> None:
    """oneDNN's prepacked linears lose to MKL sgemm on an AVX2 CPU (0.85x eager against 1.03-1.05x unpacked, full
    size): the CPU package prepacks only where the building CPU has AVX-512, and its manifest says which it had."""
    assert default_inductor_configs("cpu", "AVX2") == {"freezing": True, "cpp.weight_prepack": False}
    assert default_inductor_configs("cpu", "AVX512") == {"freezing": True, "cpp.weight_prepack": True}
    assert default_inductor_configs("cuda", "AVX2") == {}
    extra = built["aoti"].manifest.extra
    capability = torch.backends.cpu.get_cpu_capability()
    assert extra["cpu_capability"] == capability
    assert default_inductor_configs("cpu", capability).items() <= extra["inductor_configs"].items()  # + inductor's own


def test_pt2_is_device_free(built: dict[str, BuildResult]) -> None:
    """A pt2 exported on the CPU names no device in any node (saved graph and its runnable module), so it moves: here
    to the meta device, run on meta inputs (on a GPU machine the same `.to("cuda")` runs it on CUDA)."""
    program = torch.export.load(built["pt2"].path)
    assert built["pt2"].manifest.device == "cpu"
    assert device_nodes(program.graph_module) == []
    module = program.module()
    assert device_nodes(module) == []
    module = module.to("meta")
    assert {t.device.type for t in (*module.parameters(), *module.buffers())} == {"meta"}
    pv, pos = (t.to("meta") for t in inputs_at((2, 2, 28, 42), torch.float32, 14))
    out = module(pv, pos)
    assert out.device.type == "meta" and out.shape == (2, 2 * 2 * 3, 128) and out.dtype == torch.float32


def test_device_pinned_graph_is_refused() -> None:
    """A model op that pins a device cannot be made device-free: the export says which node, not a later crash."""

    class Pinned(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.arange(x.shape[-1], device="cpu")

    program = torch.export.export(Pinned(), (torch.zeros(2, 3),))
    with pytest.raises(ExportError, match=r"pins a device in 1 node\(s\), e.g. .*arange"):
        make_device_free(program)


def test_tampered_artifact_is_refused(built: dict[str, BuildResult], tmp_path: Path) -> None:
    copy = tmp_path / built["pt2"].path.name
    copy.write_bytes(built["pt2"].path.read_bytes() + b"\0")
    (tmp_path / (copy.name + ".json")).write_text(built["pt2"].path.with_name(copy.name + ".json").read_text())
    with pytest.raises(ManifestError, match="does not match"):
        read_manifest(copy)


def test_onnx_graph_is_clean_and_annotated(built: dict[str, BuildResult], tiny_dir: Path) -> None:
    path = built["onnx"].path
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert not dead_nodes(model.graph)
    assert not [p for n in model.graph.node for p in n.metadata_props if p.key == "pkg.torch.onnx.stack_trace"]
    assert {n.domain for n in model.graph.node} <= {""} and not model.functions
    assert max(o.version for o in model.opset_import if o.domain == "") >= 18
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "MatMul", "Softmax", "LayerNormalization", "Cos", "Sin"} <= ops
    assert not ops & {"Einsum", "If", "Loop"}
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert dims == {
        "pixel_values": ["batch", 3, "frames", "height", "width"],
        "patch_positions": ["batch", "tokens", 3],
    }
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["kind"] == "onnx" and meta["precision"] == "fp32" and meta["output_layer"] == "-1"
    assert meta["weights_sha256"] == weights_sha256(tiny_dir)
    assert ShapeProfile.from_dict(json.loads(meta["profile"])) == PROFILE
    assert built["onnx"].manifest.extra["external_data"] is None  # tiny weights stay inline


# -- precisions, output layer, external data ----------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_pt2_half_precisions(precision: str, tiny_dir: Path, out_dir: Path) -> None:
    result = build("pt2", request(tiny_dir, out_dir, precision))
    reference = load_wrapper(tiny_dir, precision, -1)
    run = load_runner(result.path)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert result.manifest.inputs[0]["dtype"] == result.manifest.outputs[0]["dtype"] == str(dtype).split(".")[1]
    for shape in (SHAPES[0], SHAPES[3]):
        pv, pos = inputs_at(shape, dtype, 14, seed=3)
        with torch.no_grad():
            actual, expected = run(pv, pos), reference(pv, pos)
        assert actual.dtype == dtype
        assert torch.equal(actual, expected)  # same kernels as eager in that dtype


def test_output_layer_minus_two_and_external_data(tiny_dir: Path, out_dir: Path) -> None:
    model = load_model(tiny_dir, torch.float32, "sdpa")
    results = [
        build("pt2", request(tiny_dir, out_dir, output_layer=-2)),
        build(
            "onnx",
            BuildRequest(tiny_dir, "fp32", [PROFILE], out_dir, -2, options={"quiet": True, "external_data": True}),
        ),
    ]
    pv, pos = inputs_at(SHAPES[2], torch.float32, 14, seed=5)
    with torch.no_grad():
        hidden = model(pv, patch_positions=pos, output_hidden_states=True).hidden_states
    for result in results:
        assert result.path.stem.endswith("-L2") and result.manifest.output_layer == -2
        actual = load_runner(result.path)(pv, pos)
        assert rel_l2(actual, hidden[-2]) <= REL_L2_FP32
        assert rel_l2(actual, hidden[-1]) > 0.05  # really not the last layer
    onnx_manifest = results[1].manifest
    data = results[1].path.with_name(onnx_manifest.extra["external_data"])
    assert data.is_file() and file_sha256(data) == onnx_manifest.extra["external_data_sha256"]
    assert data.stat().st_size >= 0.9 * onnx_manifest.extra["weights_bytes"] > results[1].path.stat().st_size


def test_onnx_bf16_is_built_and_checked_not_run(tiny_dir: Path, out_dir: Path) -> None:
    """A bf16 graph is opset 20, like every precision's (the newest opset TensorRT 10.0's parser reads; it used to be
    22, for Conv's bf16): its patch embedding is a MatMul over the flattened patches, no Conv."""
    result = build("onnx", request(tiny_dir, out_dir, "bf16"))
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16
    assert result.manifest.extra["opset"] == 20 and result.manifest.extra["ort_verified"] is False
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [20]
    assert "Conv" not in result.manifest.extra["ops"] and result.manifest.extra["ops"]["MatMul"] >= 1
    assert "bfloat16" in result.manifest.build["verify"]["skipped"]


def test_matmul_patch_embedding_is_the_conv(tiny_dir: Path) -> None:
    """The three ways of writing the patch embedding compute the same function (fp32: rounding apart)."""
    model = load_model(tiny_dir, torch.float32, "sdpa")
    pv, _ = inputs_at((2, 3, 28, 42), torch.float32, 14, seed=5)
    outs = {}
    for form in ("conv2d", "conv3d", "matmul"):
        model.embeddings.form = form
        with torch.no_grad():
            outs[form] = model.embeddings(pv)
    assert torch.equal(outs["conv2d"], outs["conv3d"])
    assert rel_l2(outs["matmul"], outs["conv2d"]) < 1e-6


def test_onnx_for_tensorrt_covers_every_profile(tiny_dir: Path, tmp_path: Path) -> None:
    wide = ShapeProfile("wide", Range(1, 1, 2), Range(1, 1, 1), Range(28, 28, 28), Range(28, 84, 168))
    req = BuildRequest(tiny_dir, "fp32", [PROFILE, wide], tmp_path / "engines", options={"quiet": True})
    path = onnx_for_tensorrt(req, tmp_path / "work")
    union = ShapeProfile.from_dict(json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["profile"]))
    assert (union.batch, union.width) == (Range(1, 2, 4), Range(28, 56, 168))
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pv, pos = inputs_at((1, 1, 28, 168), torch.float32, 14, seed=2)  # inside "wide" only
    actual = torch.from_numpy(session.run(None, {"pixel_values": pv.numpy(), "patch_positions": pos.numpy()})[0])
    with torch.no_grad():
        assert rel_l2(actual, load_wrapper(tiny_dir, "fp32", -1)(pv, pos)) <= REL_L2_FP32


# -- refusals -------------------------------------------------------------------------------------------------------


def test_bad_requests_are_one_line_errors(tiny_dir: Path, out_dir: Path) -> None:
    with pytest.raises(ExportError, match="precision 'int8' is not supported"):
        build("pt2", request(tiny_dir, out_dir, "int8"))
    with pytest.raises(ExportError, match="output_layer must be in"):
        build("pt2", request(tiny_dir, out_dir, output_layer=5))
    with pytest.raises(ExportError, match="unknown artifact kind"):
        build("tflite", request(tiny_dir, out_dir))
    with pytest.raises(ExportError, match="opset 17 is too old: use >= 18"):
        build("onnx", BuildRequest(tiny_dir, "bf16", [PROFILE], out_dir / "x", options={"opset": 17}))
    # A profile for another patch size would put a wrong geometry in the manifest the runtime checks inputs with.
    patch16 = ShapeProfile("patch-16", Range(1, 1, 2), Range(1, 1, 1), Range(16, 32, 64), Range(32, 32, 64), patch=16)
    with pytest.raises(ExportError, match=r"profile 'patch-16' is for 16-px patches, but .* has patch_size 14"):
        build("pt2", BuildRequest(tiny_dir, "fp32", [patch16], out_dir / "y"))


def test_existing_artifact_is_not_overwritten(built: dict[str, BuildResult], tiny_dir: Path, out_dir: Path) -> None:
    path = built["pt2"].path
    before = path.read_bytes()
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        build("pt2", request(tiny_dir, out_dir))
    assert path.read_bytes() == before
    again = build("pt2", request(tiny_dir, out_dir, overwrite=True))
    assert again.path == path and read_manifest(path).sha256 == file_sha256(path)
    assert not list(out_dir.glob(".staging-*"))


def test_cli_errors_and_table(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model", str(tiny_dir), "--out", str(tmp_path), "--quiet"]
    assert main(["pt2", *base, "--profile", "no-such-profile"]) == 2
    one_token = ["--min-shapes", "pixel_values:1x3x1x14x14", "--opt-shapes", "pixel_values:1x3x1x28x28"]
    assert main(["pt2", *base, *one_token, "--max-shapes", "pixel_values:2x3x1x28x28"]) == 2
    assert main(["pt2", *base, "--profile", "test-small", "--profile", "image-448"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'no-such-profile'" in err and "1 token(s)" in err and "several profiles are for trt" in err
    assert "Traceback" not in err
    assert main(["pt2", *base, "--profile", "test-small"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["kind", "file", "size"] and "pt2-fp32-test-small.pt2" in out
    assert main(["pt2", *base, "--profile", "test-small"]) == 1  # exists: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main(["pt2", *base, "--profile", "test-small", "--overwrite"]) == 0


def test_cli_all_skips_what_this_machine_cannot_build(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export all --device cuda`: every kind is either built or skipped with its reason, and the folder holds exactly
    the built ones. Without a GPU the torch kinds are skipped saying so; with one they are built for CUDA; with
    TensorRT installed the trt engine is built (the expected list used to leave it out: it failed on a machine with
    TensorRT). TensorRT-RTX builds from the ONNX artifact just built (no second export)."""
    args = ["all", "--model", str(tiny_dir), "--profile", "test-small", "--device", "cuda", "--out", str(tmp_path)]
    assert main([*args, "--quiet"]) == 0
    err = capsys.readouterr().err
    skipped = {kind for kind in BACKENDS if f"skip {kind}: " in err}
    expected = {artifact_name(kind, "fp32", [PROFILE]) for kind in BACKENDS if kind not in skipped}
    assert sorted(p.name for p in tmp_path.glob("*-fp32-test-small.*") if p.suffix != ".json") == sorted(expected)
    assert "onnx" not in skipped and "openvino" in skipped  # OpenVINO IRs are for OpenVINO's CPU device only
    if torch.cuda.is_available():
        assert "pt2" not in skipped, err
    else:
        assert {"pt2", "aoti", "torchscript", "trt"} <= skipped and "CUDA GPU" in err
    onnx_manifest = read_manifest(tmp_path / "onnx-fp32-test-small.onnx")
    for name in expected:
        manifest = read_manifest(tmp_path / name)
        if name.endswith(".engine"):  # built from the ONNX artifact above; verified against eager only on a GPU
            assert manifest.extra["onnx"]["sha256"] == onnx_manifest.sha256 and manifest.extra["onnx"]["built"] is False
            continue
        assert manifest.device == "cuda" and manifest.build["verify"]["rel_l2"] <= REL_L2_FP32
        assert np.isfinite(manifest.build["verify"]["max_abs"])


def test_cli_all_kinds_must_build(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`export all --kinds ...` names what must be built: a named kind this machine cannot build is an error (exit 1),
    not a skip; an unknown name is a usage error."""
    args = ["all", "--model", str(tiny_dir), "--profile", "test-small", "--out", str(tmp_path), "--quiet"]
    assert main([*args, "--device", "cuda", "--kinds", "onnx,openvino"]) == 1
    err = capsys.readouterr().err
    assert "error: openvino: builds IRs for OpenVINO's CPU device only, not --device cuda" in err
    assert (tmp_path / "onnx-fp32-test-small.onnx").is_file()
    assert main([*args, "--kinds", "onnx,nope"]) == 2
    assert "--kinds: unknown kind(s) nope" in capsys.readouterr().err


def test_cli_all_keeps_up_to_date_artifacts(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make all` runs `export all` again: a verified artifact built from the same request is kept, not refused;
    a damaged one is neither kept nor overwritten. (--device cuda: on a CPU machine only onnx builds, fast; on a
    GPU machine the torch kinds are built and kept too.)"""
    args = ["all", "--model", str(tiny_dir), "--profile", "test-small", "--device", "cuda", "--out", str(tmp_path)]
    assert main([*args, "--quiet"]) == 0
    onnx_path = tmp_path / "onnx-fp32-test-small.onnx"
    before = file_sha256(onnx_path)
    capsys.readouterr()
    assert main([*args, "--quiet"]) == 0
    assert f"keep onnx: {onnx_path} is up to date" in capsys.readouterr().out
    assert file_sha256(onnx_path) == before
    with onnx_path.open("r+b") as f:  # damage it: the manifest no longer verifies
        f.seek(100)
        f.write(b"\x00\x01\x02")
    assert main([*args, "--quiet"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--quiet", "--precision", "fp16"]) == 0  # another precision is another artifact
    assert (tmp_path / "onnx-fp16-test-small.onnx").is_file()


def test_export_all_computes_the_eager_check_once(tiny_dir: Path) -> None:
    """Inside `export all` (shared_eager_reference) every kind's build-time check takes the same eager output, computed
    once; outside it each check computes its own (a patched model between builds gets a patched eager)."""
    from export.verify import eager_output, shared_eager_reference

    wrapper = load_wrapper(tiny_dir, "fp32", -1)
    pv, pos = inputs_at((1, 1, 28, 56), torch.float32, 14, seed=1)
    assert eager_output(wrapper, pv, pos) is not eager_output(wrapper, pv, pos)
    with shared_eager_reference():
        first = eager_output(load_wrapper(tiny_dir, "fp32", -1), pv, pos)
        assert eager_output(wrapper, pv, pos) is first  # another load of the same checkpoint: the same reference
        small = inputs_at((1, 1, 28, 28), torch.float32, 14, seed=1)
        assert eager_output(wrapper, *small) is not first  # another shape
    assert torch.equal(eager_output(wrapper, pv, pos), first)
