"""Kind "onnx": an ONNX graph from `torch.onnx.export(..., dynamo=True)` with the profile's dynamic axes.

- Opset 20 for every precision (GELU is a single Gelu node; `options["opset"]` overrides, >= 18): the newest opset
  every TensorRT 10 parser reads (onnx-tensorrt's operators.md: TensorRT 10.0/10.1 take opsets 9-20, 10.15 takes
  9-24; TensorRT-RTX 1.7 here parses 20 and 22). A bf16 graph writes its patch embedding as a MatMul over the
  flattened patches (`EncoderExport.patch_embedding("matmul")`): ONNX's Conv takes bfloat16 only from opset 22;
  fp32/fp16 graphs keep the Conv.
- The exporter's optimiser (onnxscript: constant folding, dead-code removal, function inlining) runs on every
  graph, then a last dead-node sweep; the graph uses only standard-domain ops and no local functions, so it stays
  parsable by TensorRT (`onnx_for_tensorrt` below is the entry point for the TensorRT builder).
- Symbolic dims are named like the manifest: batch, frames, height, width, tokens.
- Weights go to one external data file `<artifact>.data` when they exceed EXTERNAL_DATA_MIN_BYTES (the full-size
  model) or when `options["external_data"]` is True; the file name is in `manifest.extra["external_data"]`.
- metadata_props carry the manifest essentials (kind, precision, profile, weights sha256, output layer).
- Checked with `onnx.checker.check_model(full_check=True)` and strict shape inference; fp32 and fp16 graphs run
  under onnxruntime's CPU provider against eager; bf16 graphs cannot (no bfloat16 kernels there) and say so.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from contract.backends import BACKENDS
from contract.io import CHANNELS, DYNAMIC_AXES, INPUT_NAMES, OUTPUT_NAMES, PACKED_INPUT_NAMES
from contract.manifest import FORMAT_VERSION, ManifestError, file_sha256, read_manifest
from contract.profiles import AXES, Profile, Range, ShapeProfile, profile_from_dict
from models import weights_sha256

from .artifact import packed_attention
from .base import BuildRequest, BuildResult, ExportError
from .inputs import describe, example_facts, example_inputs
from .measure import BuildMeter
from .pipeline import BuildContext, Produced, run_build
from .trace import export_mode, export_program
from .verify import verify_artifact
from .wrapper import EncoderExport, EncoderPackedExport, load_wrapper

OPSET = {"fp32": 20, "fp16": 20, "bf16": 20}
MIN_OPSET = 18
# How each precision's graph writes the patch embedding (models.modeling.OneVisionEncoderEmbeddings.FORMS).
PATCH_EMBEDDING = {"fp32": "conv3d", "fp16": "conv3d", "bf16": "matmul"}
EXTERNAL_DATA_MIN_BYTES = 100 * 2**20
BF16_NOT_RUN = (
    "not run: onnxruntime's CPU provider has no bfloat16 kernels (e.g. Conv); the graph was checked with "
    "onnx.checker (full_check) and shape inference only; run it with TensorRT"
)
DEBUG_METADATA = frozenset({"pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node"})
# (input index, axis) -> manifest symbol
_AXIS_SYMBOLS = {(i, axis): symbol for i, name in enumerate(INPUT_NAMES) for axis, symbol in DYNAMIC_AXES[name].items()}


@dataclass
class OnnxInfo:
    path: Path
    opset: int
    external_data: str | None
    ops: dict[str, int]
    weights_bytes: int
    removed_dead_nodes: int
    inferred_output_shape: list[int | str] = field(default_factory=list)


def opset_for(precision: str, options: dict[str, Any]) -> int:
    opset = int(options.get("opset", OPSET[precision]))
    if opset < MIN_OPSET:
        raise ExportError(f"onnx: opset {opset} is too old: use >= {MIN_OPSET}")
    return opset


def covers(outer: Profile, inner: Profile) -> list[str]:
    """Reasons `outer` does not contain every shape of `inner` (empty if it does)."""
    if outer.packed != inner.packed:
        return [f"profile {outer.name!r} is {'packed' if outer.packed else 'batched'}, {inner.name!r} is not"]
    axes = ("call_tokens", "call_items", *AXES[1:]) if outer.packed else AXES
    reasons = []
    for axis in axes:
        o, i = getattr(outer, axis), getattr(inner, axis)
        if i.min < o.min or i.max > o.max:
            reasons.append(f"{axis} [{i.min}, {i.max}] not inside [{o.min}, {o.max}]")
    return reasons


def reusable_onnx(path: Path, request: BuildRequest, precision: str) -> dict[str, Any]:
    """Check an `.onnx` of this bundle (`options["onnx"]`) against a build that converts it (TensorRT engines,
    OpenVINO IRs) through its manifest: kind, `precision` (the graph the kind builds from), output layer, weights and
    a profile covering every requested one. Returns the facts the new manifest keeps; one ExportError otherwise."""
    try:
        manifest = read_manifest(path, verify=True)
    except ManifestError as exc:
        raise ExportError(f"options['onnx']: {exc}") from None
    problems = []
    if manifest.kind != "onnx":
        problems.append(f"kind {manifest.kind!r}, not 'onnx'")
    if manifest.precision != precision:
        problems.append(f"precision {manifest.precision}, but this build converts the {precision} graph")
    if manifest.output_layer != request.output_layer:
        problems.append(f"output layer {manifest.output_layer}, not {request.output_layer}")
    if manifest.source.get("weights_sha256") != weights_sha256(request.model_dir):
        problems.append(f"its weights are not those of {request.model_dir}")
    onnx_profile = profile_from_dict(manifest.profile)  # batched or packed
    for profile in request.profiles:
        problems += [f"profile {profile.name!r}: {r}" for r in covers(onnx_profile, profile)]
    if problems:
        raise ExportError(f"options['onnx'] {path} does not fit this build: {'; '.join(problems)}")
    return {"path": str(path), "sha256": manifest.sha256, "profile": onnx_profile.name, "built": False}


def union_profile(profiles: list[Profile]) -> Profile:
    """One profile covering every given profile (for one ONNX graph behind several TensorRT profiles); packed
    profiles stand alone (one packed optimisation profile an engine)."""
    if len(profiles) == 1:
        return profiles[0]
    batched = [p for p in profiles if isinstance(p, ShapeProfile)]
    if len(batched) != len(profiles):
        raise ExportError("a packed profile goes alone: one packed optimisation profile an engine")
    first = batched[0]

    def cover(axis: str) -> Range:
        ranges = [getattr(p, axis) for p in batched]
        lo, hi = min(r.min for r in ranges), max(r.max for r in ranges)
        return Range(lo, min(max(getattr(first, axis).opt, lo), hi), hi)

    return ShapeProfile(
        "+".join(p.name for p in batched), cover("batch"), cover("frames"), cover("height"), cover("width")
    )


def _quiet_exporter_logs() -> None:
    # "torchvision is not installed. Skipping torchvision::nms" and the like: noise for this model.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def rename_dims(model: onnx.ModelProto) -> dict[str, str]:
    """Name the symbolic dims after the manifest (batch, frames, height, width, tokens), everywhere they occur."""
    mapping: dict[str, str] = {}
    for (index, axis), symbol in _AXIS_SYMBOLS.items():
        dims = model.graph.input[index].type.tensor_type.shape.dim
        if axis < len(dims) and dims[axis].dim_param:
            param = dims[axis].dim_param
            mapping.setdefault(param, symbol)
            scaled = re.fullmatch(r"\d+\*(\w+)", param)  # height = patch * height_patches
            if scaled and symbol in ("height", "width"):
                mapping.setdefault(scaled.group(1), f"{symbol}_patches")
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in mapping:
                dim.dim_param = mapping[dim.dim_param]
    return mapping


def dead_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes none of whose outputs is used by another node or is a graph output."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    return [node for node in graph.node if not any(out and out in used for out in node.output)]


def sweep_dead_nodes(graph: onnx.GraphProto) -> int:
    removed = 0
    while dead := dead_nodes(graph):
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return removed


def strip_debug_metadata(graph: onnx.GraphProto) -> int:
    """Drop the exporter's per-node stack traces and FX dumps: they hold absolute source paths of the machine that
    exported (artifacts should not depend on where the checkout lives) and are most of the graph's non-weight bytes.
    The module namespaces stay (profilers use them)."""
    removed = 0
    for node in graph.node:
        keep = [p for p in node.metadata_props if p.key not in DEBUG_METADATA]
        removed += len(node.metadata_props) - len(keep)
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    return removed


def check_tensorrt_friendly(model: onnx.ModelProto) -> None:
    """Standard ops only: no custom domains, no local functions (TensorRT's parser handles neither)."""
    domains = {node.domain for node in model.graph.node} - {"", "ai.onnx"}
    if domains or model.functions:
        what = f"custom domains {sorted(domains)}" if domains else f"{len(model.functions)} local function(s)"
        raise ExportError(f"onnx: the optimised graph still has {what}; it would not parse in TensorRT")


def _metadata(request: BuildRequest, profile: Profile, precision: str, opset: int) -> dict[str, str]:
    return {
        "kind": "onnx",
        "precision": precision,
        "profile": json.dumps(profile.to_dict(), sort_keys=True),
        "weights_sha256": weights_sha256(request.model_dir),
        "output_layer": str(request.output_layer),
        "opset": str(opset),
        "inputs": ",".join(PACKED_INPUT_NAMES if profile.packed else INPUT_NAMES),
        "outputs": ",".join(OUTPUT_NAMES),
        "manifest_format_version": str(FORMAT_VERSION),
    }


def flatten_packed_inputs(model: onnx.ModelProto, patch_values: int) -> None:
    """A packed graph is traced with (N, C*p*p) patches and (N, 3) positions (the ONNX exporter does not take the
    scaled dims of flat ones); this gives it the contract's flat boundary (N*C*p*p,) and (N*3,): a Reshape to rows
    behind each input, which is what Triton's ragged batching hands a model (contract/packing.py)."""
    widths = {"pixel_patches": (patch_values, "patch_values"), "patch_positions": (3, "position_values")}
    graph, front = model.graph, []
    for value in graph.input:
        if value.name not in widths:
            continue
        width, symbol = widths[value.name]
        rows, shape = f"{value.name}_rows", f"{value.name}_row_shape"
        for node in graph.node:
            node.input[:] = [rows if name == value.name else name for name in node.input]
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1, width], dtype=np.int64), shape))
        front.append(onnx.helper.make_node("Reshape", [value.name, shape], [rows], name=f"{value.name}_to_rows"))
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = symbol
    nodes = [*front, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def _convert(wrapper: EncoderExport, profile: Profile, opset: int, device: str, precision: str) -> onnx.ModelProto:
    packed = isinstance(
        wrapper, EncoderPackedExport
    )  # traced in rows; flatten_packed_inputs gives it the flat boundary
    with wrapper.patch_embedding(PATCH_EMBEDDING[precision]):
        program = export_program(wrapper, profile, device)
    _quiet_exporter_logs()
    with export_mode():
        onnx_program = torch.onnx.export(
            program,
            example_inputs(wrapper, profile, device),
            dynamo=True,
            opset_version=opset,
            input_names=list(PACKED_INPUT_NAMES if packed else INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            optimize=True,
            verify=False,
        )
    if onnx_program is None:
        raise ExportError("onnx: torch.onnx.export returned no program")
    model = onnx_program.model_proto
    del onnx_program
    if packed:
        flatten_packed_inputs(model, CHANNELS * profile.patch * profile.patch)
    return model


def _inferred_output_shape(path: Path) -> list[int | str]:
    inferred = path.with_name(path.name + ".inferred")
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True, strict_mode=True)
        model = onnx.load(str(inferred), load_external_data=False)
    finally:
        inferred.unlink(missing_ok=True)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def write_onnx(
    request: BuildRequest,
    path: Path,
    *,
    wrapper: EncoderExport | None = None,
    profile: Profile | None = None,
    precision: str | None = None,
    meter: BuildMeter | None = None,
    attention: str | None = None,
) -> OnnxInfo:
    """Export, optimise, name, annotate, save and check one ONNX graph at `path` (not run)."""
    profile = profile or union_profile(request.profiles)
    precision = precision or request.precision
    meter = meter or BuildMeter("onnx", quiet=bool(request.options.get("quiet", False)))
    opset = opset_for(precision, request.options)
    if wrapper is None:
        meter.stage("load", f"{request.model_dir} as {precision}")
        wrapper = load_wrapper(request.model_dir, precision, request.output_layer, packed=attention)
    meter.stage("torch.onnx.export", f"opset {opset}, {describe(profile)}")
    model = _convert(wrapper, profile, opset, "cpu", precision)
    meter.stage("finalise", "dead-node sweep, dim names, metadata")
    removed = sweep_dead_nodes(model.graph)
    strip_debug_metadata(model.graph)
    check_tensorrt_friendly(model)
    if not profile.packed:
        rename_dims(model)
    onnx.helper.set_model_props(model, _metadata(request, profile, precision, opset))
    inputs = ", ".join(PACKED_INPUT_NAMES if profile.packed else INPUT_NAMES)
    model.doc_string = f"OneVision-Encoder-large-lang ({inputs}) -> last_hidden_state"
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    external = request.options.get("external_data")
    use_external = weights > EXTERNAL_DATA_MIN_BYTES if external is None else bool(external)
    location = BACKENDS["onnx"].side_names(path)[0] if use_external else None
    meter.stage("save", f"{weights / 2**20:.0f} MiB of weights" + (f" -> {location}" if location else " inline"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if location:
        (path.parent / location).unlink(missing_ok=True)
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location)
    else:
        onnx.save_model(model, str(path))
    del model
    meter.stage("check", "onnx.checker full_check + strict shape inference")
    onnx.checker.check_model(str(path), full_check=True)
    shape = _inferred_output_shape(path)
    return OnnxInfo(path, opset, location, dict(sorted(ops.items())), weights, removed, shape)


def onnx_for_tensorrt(request: BuildRequest, folder: Path, precision: str | None = None) -> Path:
    """The ONNX file TensorRT parses for `request`: dynamic axes covering all its profiles, checked, not run.

    Written to `folder/model-<precision>.onnx` (+ `.data` when large); `precision` defaults to the request's
    (TensorRT usually builds fp16/bf16 engines from the fp32 graph: pass precision="fp32").
    """
    precision = precision or request.precision
    return write_onnx(request, Path(folder) / f"model-{precision}.onnx", precision=precision).path


def _ort_runner(path: Path, precision: str) -> Any:
    from runtime.backends.onnx import create_session

    session = create_session(path, torch.device("cpu"), precision)

    names = [i.name for i in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: tensor.cpu().numpy() for name, tensor in zip(names, inputs, strict=True)}
        out = session.run([OUTPUT_NAMES[0]], feeds)[0]
        return torch.from_numpy(np.asarray(out))

    return run


class OnnxBuilder:
    kind = "onnx"

    def unavailable(self, request: BuildRequest) -> str | None:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            return "the dynamo ONNX exporter needs onnxscript (pip install onnxscript), not installed here"
        return None

    def build(self, request: BuildRequest) -> BuildResult:
        return run_build(self.kind, request, self.unavailable, self._produce)

    def _produce(self, ctx: BuildContext) -> Produced:
        request, meter = ctx.request, ctx.meter
        opset_for(request.precision, request.options)  # refuse a bad opset before loading anything
        meter.stage("load", f"{request.model_dir} as {request.precision}")
        attention = packed_attention(self.kind, request)
        wrapper = load_wrapper(request.model_dir, request.precision, request.output_layer, packed=attention)
        info = write_onnx(request, ctx.staged, wrapper=wrapper, profile=request.profile, meter=meter)
        if request.precision == "bf16":
            meter.say(BF16_NOT_RUN)
            verify: dict[str, Any] = {"skipped": BF16_NOT_RUN}
        else:
            meter.stage("verify", "onnxruntime CPU at the profile's min shape against eager")
            run = _ort_runner(ctx.staged, request.precision)
            verify = verify_artifact(self.kind, run, wrapper, request.profile, request.precision)
        extra_files = [ctx.staged.with_name(info.external_data)] if info.external_data else []
        extra = {
            "loader": "onnxruntime.InferenceSession(path) (external data is found beside the .onnx)",
            "opset": info.opset,
            "external_data": info.external_data,
            "external_data_sha256": file_sha256(extra_files[0]) if extra_files else None,
            "weights_bytes": info.weights_bytes,
            "ops": info.ops,
            "dead_nodes_removed": info.removed_dead_nodes,
            "inferred_output_shape": info.inferred_output_shape,
            "ort_verified": request.precision != "bf16",
            **example_facts(request.profile),
        }
        return Produced(extra_files=extra_files, extra=extra, build={"verify": verify}, tools=("onnx-ir",))
