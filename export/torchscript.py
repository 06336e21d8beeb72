"""Kind "torchscript": the export wrapper traced with `torch.jit.trace`, frozen, saved with `torch.jit.save` (.pt).

The **legacy** deployment path, for existing libtorch services (`torch::jit::load`) and Triton's PyTorch backend
(`platform: "pytorch_libtorch"`); torch.export (`pt2`, `aoti`) stays the recommended one, and torch 2.13 warns
that `torch.jit.trace` is deprecated. Load it with `torch.jit.load(path, map_location=device)`; it takes
pixel_values (B, 3, T, H, W) in the artifact's precision and patch_positions (B, L, 3) int64.

Dynamic shapes: a trace records whatever Python computes as constants. The traced path keeps every size a graph
value: under tracing `tensor.shape[i]` is a 0-dim tensor, so the model's reshapes and views (embedding flatten,
attention heads, `unflatten(-1, (-1, 2))` in RoPE) take their sizes from `aten::size` nodes, and the model's
Python-level size checks are skipped while tracing (`torch.jit.is_tracing()`; the runtime checks every input
against the manifest before the graph runs). A TracerWarning is what a baked value looks like ("Converting a tensor
to a Python integer/boolean ... treated as a constant"), so the build refuses a trace that emits one, then checks
the saved file at the profile's min shape, which differs from the traced shape on every dynamic axis
(`trace_shape`: one step above the min).

Freezing (`torch.jit.freeze`) inlines the weights and folds constants: the frozen graph names no device (checked at
build time: a traced `.to(device=...)` would be a Device constant), so a CPU-built file runs on CUDA with
`map_location="cuda"`. `torch.jit.optimize_for_inference` is not applied: measured
on the tiny model (torch 2.13, CPU) it keeps numerics (fp32 rel L2 2-4e-7 against eager, bf16 ~8e-3, the noise of
each precision), but its result does not load back (`torch.jit.load`: "required keyword attribute 'value' is
undefined") and it specialises the graph for the build device.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from contract.dtypes import DTYPES
from contract.packing import pack
from contract.profiles import PackedProfile, Profile, Range, ShapeProfile
from models.tf32 import exact_float32

from .artifact import packed_attention
from .base import BuildRequest, BuildResult, ExportError
from .inputs import Shape, inputs_at, packed_item_shapes, packed_items
from .pipeline import BuildContext, Produced, run_build
from .torch_export import cuda_missing
from .verify import verify_artifact
from .wrapper import EncoderExport, load_wrapper


def _next_to_min(r: Range, scale: int = 1) -> int:
    lo, hi = r.min // scale, r.max // scale
    return min(max(2, lo + 1), hi) * scale


def trace_shape(profile: ShapeProfile) -> Shape:
    """(B, T, H, W) to trace at: one step above the profile's min on every dynamic axis (>= 2), so the build-time
    check at the min shape differs from the trace on every axis that may vary, and the trace stays cheap (full size,
    image-448: batch 2 instead of torch.export's example batch 8)."""
    p = profile.patch
    b, t = _next_to_min(profile.batch), _next_to_min(profile.frames)
    return b, t, _next_to_min(profile.height, p), _next_to_min(profile.width, p)


def trace_example(profile: Profile, dtype: torch.dtype, device: str) -> tuple[list[Any], tuple[torch.Tensor, ...]]:
    """What to trace at: (B,T,H,W) one step above the profile's min (`trace_shape`), or a packed profile's example
    items (the build-time check packs other items: export/inputs.py)."""
    if isinstance(profile, PackedProfile):
        shapes = packed_item_shapes(profile, "example")
        items = packed_items(shapes, dtype, profile.patch, device)
        return [list(s) for s in shapes], pack(items, profile.patch)
    shape = trace_shape(profile)
    return list(shape), inputs_at(shape, dtype, profile.patch, device)


def trace(wrapper: EncoderExport, example: tuple[torch.Tensor, ...]) -> tuple[torch.jit.ScriptModule, list[str]]:
    """`torch.jit.trace` the wrapper on `example`; returns the traced module and every TracerWarning as one line."""
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    tracer = [
        f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}"
        for w in caught
        if issubclass(w.category, torch.jit.TracerWarning)
    ]
    for w in caught:  # everything else (torch's deprecation notice, ...) goes on as the caller's filters decide
        if not issubclass(w.category, torch.jit.TracerWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return traced, tracer


def freeze(traced: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """`torch.jit.freeze`: weights inlined as constants, constant expressions folded (without TF32)."""
    with torch.no_grad(), exact_float32():
        return torch.jit.freeze(traced.eval())


def device_nodes(module: torch.jit.ScriptModule) -> list[str]:
    """Nodes of the (inlined) graph that name a device (a constant of type Device): none in a movable artifact."""
    found = []
    graph = module.inlined_graph  # a copy: keep it alive while its nodes are read
    for node in graph.nodes():  # a trace has no nested blocks: every node is at the top level
        if node.kind() == "prim::Constant" and node.output().type().kind() == "DeviceObjType":
            found.append(str(node).strip())
    return found


class TorchScriptBuilder:
    kind = "torchscript"

    def unavailable(self, request: BuildRequest) -> str | None:
        return cuda_missing(request, "a TorchScript module")

    def build(self, request: BuildRequest) -> BuildResult:
        return run_build(self.kind, request, self.unavailable, self._produce)

    def _produce(self, ctx: BuildContext) -> Produced:
        request, meter = ctx.request, ctx.meter
        meter.stage("load", f"{request.model_dir} as {request.precision} on {request.device}")
        attention = packed_attention(self.kind, request)
        wrapper = load_wrapper(request.model_dir, request.precision, request.output_layer, request.device, attention)
        shape, example = trace_example(request.profile, DTYPES[request.precision], request.device)
        meter.stage("trace", f"torch.jit.trace (legacy TorchScript), profile {request.profile.name}, at {shape}")
        traced, tracer_warnings = trace(wrapper, example)
        if tracer_warnings:
            raise ExportError(
                f"torch.jit.trace recorded {len(tracer_warnings)} Python value(s) as constants, so the artifact "
                f"would only be right at the example shape; first: {tracer_warnings[0]}"
            )
        meter.stage("freeze", "torch.jit.freeze")
        module = freeze(traced)
        pinned = device_nodes(module)
        if pinned:
            raise ExportError(f"the frozen graph names a device ({pinned[0]}); TorchScript artifacts must be movable")
        meter.stage("save", "torch.jit.save")
        torch.jit.save(module, str(ctx.staged))
        meter.stage("verify", "torch.jit.load round trip, run at the profile's min shape against eager")
        loaded = torch.jit.load(str(ctx.staged), map_location=request.device)
        verify = verify_artifact(self.kind, loaded, wrapper, request.profile, request.precision, request.device)
        extra = {
            "loader": "torch.jit.load(path, map_location=device)",
            "trace_shape": shape,
            "frozen": True,
            "optimize_for_inference": False,
            "movable": True,
            "tracer_warnings": tracer_warnings,
            "requires_torch": torch.__version__,
        }
        return Produced(extra=extra, build={"verify": verify})
