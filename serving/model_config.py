"""Triton `config.pbtxt` for the encoder, from an artifact's manifest and shape profile.

One function per Triton platform/backend, registered in PLATFORMS by artifact kind:

- `onnxruntime_onnx` (kind onnx) and `tensorrt_plan` (kind trt): Triton runs the artifact itself; the wire dtypes
  are the model's own (the manifest's, as the exporter or the built engine reported them), BF16 included.
- `python` (kinds Triton cannot run itself: pt2, aoti, trt-rtx, openvino; any kind with `python_backend=True`):
  `triton_model.py` runs the artifact through `runtime.load`. Pixel values travel as FP32 for a bf16 artifact and
  are rounded to bfloat16 in the model (numpy, and so most clients, have no bfloat16; the runtime's own rule for
  numpy float32 into a bf16 artifact, one rounding rule for every client). last_hidden_state of a bf16 artifact
  travels as FP32 (exact: every bfloat16 is a float32).
- `pytorch_libtorch` (kind torchscript): Triton's PyTorch (LibTorch) backend runs `model.pt` (rules of
  triton-inference-server/pytorch_backend r24.10, Triton 2.51, checked in its src/libtorch.cc). Inputs keep their
  names: they are forward()'s argument names, so the backend maps them by name (its FORWARD_ARGUMENT convention).
  The output keeps its name too: a name without "__" makes the backend take outputs in config order
  (STRICT_CONFIG_ORDERING), and the module returns one tensor, so clients ask for `last_hidden_state` on every
  platform.
  The backend has no BF16 (its config-type table stops at FP16/FP32/FP64), so a bf16 artifact is refused here
  (`--python-backend` serves it). The backend's parameters (DISABLE_OPTIMIZED_EXECUTION, INFERENCE_MODE, ...; no
  NVFuser switch in this release) stay at its defaults, optimized execution on and inference mode on: the settings
  `runtime.load`'s runner calls the module with (graph-executor optimisation on, no_grad); ServeOptions.parameters
  sets any of them.

Dims exclude the batch axis (max_batch_size > 0 lets Triton batch): an axis the profile fixes (min == max) is a
fixed dim, so Triton itself refuses other sizes; a dynamic one is -1 and the model's validation checks its range.
For a batched artifact Triton's dynamic batcher only puts requests of equal shapes into one batch.

Packed artifacts (a packed profile, contract/packing.py) take one item a request, (1, 3, T, H, W) / (1, L, 3) as
today, and batch *different* shapes: every input is `allow_ragged_batch: true`. Triton 2.51's dynamic batcher makes
requests of equal shapes a condition of one batch only for inputs that have a -1 dim and are not ragged
(core src/backend_model.cc SetConfiguredScheduler, `enforce_equal_shape_tensors`), so with every variable input
ragged it merges requests of any shapes, up to max_batch_size = the profile's items a call (`call_items.max`).
- Python backend: `execute` gets the merged requests one by one and packs them (serving/batching.py
  run_packed_requests: each checked alone, the valid ones packed within the profile's token budget).
- `onnxruntime_onnx` / `tensorrt_plan` (flat packed graphs): the inputs are the packed ones, `pixel_patches`
  [-1, C*p*p] and `patch_positions` [-1, 3] a request (its L tokens' patches and positions, batch dim 1), both
  ragged: these backends hand the model a ragged input as the 1-D concatenation of the batch's requests (ORT: the
  model input must be [-1]; TensorRT: the engine's must be 1-D with dims[0] equal), which is the flat layout these
  graphs take. `cu_seqlens` is a `batch_input` of kind BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO over
  `patch_positions` (TYPE_INT32: 0, 3*L_1, 3*(L_1+L_2), ...; the graph divides by 3 itself, models/packing.py
  token_offsets), and `last_hidden_state` a `batch_output` BATCH_SCATTER_WITH_INPUT_SHAPE with source
  `patch_positions`: the backend cuts the (N, hidden) output per request, each taking the shape of its own
  patch_positions request with the -1 dims filled in: (1, L, hidden) (backend src/backend_output_responder.cc).
  Triton counts requests, not tokens: a batch of max_batch_size of the largest items may exceed the profile's token
  budget (fine for the ONNX graph, whose N is free; a TensorRT engine refuses a batch beyond its profile's N).
  The config's comment says so and gives the volume for Triton's custom batching strategy that bounds it
  (the backend repository's example volume_batching, MAX_BATCH_VOLUME_BYTES, set by TRITON_BATCH_STRATEGY_PATH).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.backends import BACKENDS
from contract.dtypes import TRITON_TYPES  # manifest dtype (torch or numpy spelling) -> Triton TYPE_*
from contract.io import CHANNELS, SIGNATURE
from contract.profiles import PackedProfile, Range

from . import BATCH_INPUT, INPUTS, MODEL_NAME, OUTPUT, PACKED_INPUTS
from .artifacts import ArtifactInfo, ServingError


@dataclass(frozen=True)
class ServeOptions:
    """What a deployment chooses beyond the artifact: batching, instances, names."""

    model_name: str = MODEL_NAME
    preferred_batch_sizes: Sequence[int] = ()  # empty: the profile's opt batch (if > 1) and its max
    max_queue_delay_us: int = 1000
    instance_count: int = 1
    instance_kind: str = "auto"  # auto | cpu | gpu
    parameters: dict[str, str] = field(default_factory=dict)


def triton_type(dtype: str) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in TRITON_TYPES:
        raise ServingError(f"dtype {dtype!r} has no Triton type here (known: {sorted(TRITON_TYPES)})")
    return TRITON_TYPES[name]


def dims(info: ArtifactInfo) -> dict[str, list[int]]:
    """Per-request dims (batch excluded) of inputs and output; -1 where the profile leaves an axis dynamic. A packed
    artifact's request is one item of the frames/height/width its profile allows (the same inputs as a batched one)."""
    p = info.profile
    t, h, w = (r.min if r.static else -1 for r in (p.frames, p.height, p.width))
    static = p.frames.static and p.height.static and p.width.static
    if isinstance(p, PackedProfile):
        tokens = p.item_tokens(p.frames.min, p.height.min, p.width.min) if static else -1
    else:
        tokens = p.tokens("min") if static else -1
    sizes = {"frames": t, "height": h, "width": w, "tokens": tokens, "hidden": info.hidden_size or -1}
    return {name: [a if isinstance(a, int) else sizes[a] for a in axes[1:]] for name, axes in SIGNATURE.items()}


def batch_range(info: ArtifactInfo) -> Range:
    """What Triton batches: samples (a batched profile's batch) or requests of one item (a packed call's items)."""
    p = info.profile
    return p.call_items if isinstance(p, PackedProfile) else p.batch


def preferred_sizes(info: ArtifactInfo, options: ServeOptions) -> list[int]:
    b = batch_range(info)
    sizes = list(options.preferred_batch_sizes) or sorted({s for s in (b.opt, b.max) if s > 1})
    bad = [s for s in sizes if not 1 <= s <= b.max]
    if bad:
        what = "items range" if info.packed else "batch range"
        raise ServingError(f"preferred batch size {bad[0]} outside the profile's {what} [1, {b.max}]")
    return sizes


def _group(info: ArtifactInfo, options: ServeOptions, gpu_only: bool = False, profiles: str = "") -> str:
    """One instance group: `count` instances of the model, on the CPU or the GPU(s)."""
    if options.instance_count < 1:
        raise ServingError(f"instance count must be >= 1, got {options.instance_count}")
    kind = options.instance_kind
    if kind == "auto":
        kind = "gpu" if gpu_only or info.manifest.device == "cuda" else "cpu"
    if kind not in ("cpu", "gpu"):
        raise ServingError(f"instance kind must be auto, cpu or gpu, got {kind!r}")
    if gpu_only and kind != "gpu":
        raise ServingError(f"{info.kind} artifacts run on a GPU only (instance kind gpu), got {kind!r}")
    triton_kind = "KIND_GPU" if kind == "gpu" else "KIND_CPU"
    return f"{{ count: {options.instance_count} kind: {triton_kind}{profiles} }}"


@dataclass(frozen=True)
class Tensor:
    """One config input or output: per-request dims (batch excluded); `ragged`: allow_ragged_batch."""

    name: str
    data_type: str
    dims: list[int]
    ragged: bool = False

    def text(self) -> str:
        ragged = " allow_ragged_batch: true" if self.ragged else ""
        shape = ", ".join(str(d) for d in self.dims)
        return f'  {{ name: "{self.name}" data_type: {self.data_type} dims: [ {shape} ]{ragged} }}'


def render(
    info: ArtifactInfo,
    options: ServeOptions,
    *,
    header: list[str],
    inputs: list[Tensor],
    output: Tensor,
    group: str,
    batch: list[str] | None = None,
) -> str:
    """The config.pbtxt text shared by every platform (`batch`: batch_input/batch_output blocks)."""
    p = info.profile
    if isinstance(p, PackedProfile):
        shape = (
            f"packed: items {p.call_items.min}..{p.call_items.max} and up to {p.call_tokens.max} tokens a call, "
            "one item a request"
        )
    else:
        shape = f"batch {p.batch.min}..{p.batch.max}"
    lines = [
        f"# {info.path.name}: {info.kind} {info.precision}, profile {p.name!r} ({shape}). "
        "Written by `python -m serving repository`.",
        f'name: "{options.model_name}"',
        *header,
        f"max_batch_size: {batch_range(info).max}",
        "input [",
        ",\n".join(t.text() for t in inputs),
        "]",
        "output [",
        output.text(),
        "]",
        *(batch or []),
        "dynamic_batching {",
        *(f"  preferred_batch_size: {s}" for s in preferred_sizes(info, options)),
        f"  max_queue_delay_microseconds: {options.max_queue_delay_us}",
        "}",
        f"instance_group [ {group} ]",
    ]
    for key, value in sorted(options.parameters.items()):
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def _request_tensors(info: ArtifactInfo, types: dict[str, str]) -> tuple[list[Tensor], Tensor]:
    """pixel_values / patch_positions -> last_hidden_state, ragged for a packed artifact (different shapes batch)."""
    d = dims(info)
    return [Tensor(n, types[n], d[n], ragged=info.packed) for n in INPUTS], Tensor(OUTPUT, types[OUTPUT], d[OUTPUT])


def _manifest_types(info: ArtifactInfo) -> dict[str, str]:
    return {name: triton_type(info.io(name)["dtype"]) for name in (*INPUTS, OUTPUT)}


def python_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Python backend running `triton_model.py` (runtime.load); bf16 pixel values and outputs travel as FP32. A packed
    artifact takes the same inputs, one item a request, ragged: Triton merges requests of different shapes."""
    wire = {"fp32": "TYPE_FP32", "fp16": "TYPE_FP16", "bf16": "TYPE_FP32"}
    if info.precision not in wire:
        raise ServingError(f"{info.path}: unknown precision {info.precision!r}")
    types = {"pixel_values": wire[info.precision], "patch_positions": "TYPE_INT64", OUTPUT: wire[info.precision]}
    inputs, output = _request_tensors(info, types)
    return render(
        info, options, header=['backend: "python"'], inputs=inputs, output=output, group=_group(info, options)
    )


def packed_native(info: ArtifactInfo) -> tuple[list[Tensor], Tensor, list[str]]:
    """A flat packed graph on Triton's ONNX Runtime / TensorRT backend (see the module docstring): ragged
    pixel_patches and patch_positions, cu_seqlens as a batch input, last_hidden_state scattered per request."""
    p = info.profile
    assert isinstance(p, PackedProfile)
    if not info.packed_flat:
        raise ServingError(
            f"{info.path}: a native packed config needs a flat packed graph (1-D inputs: what Triton's ragged "
            "batching hands a model); this one takes rows, serve it with --python-backend"
        )
    types = {name: triton_type(info.io(name)["dtype"]) for name in (*PACKED_INPUTS, BATCH_INPUT, OUTPUT)}
    if types[BATCH_INPUT] != "TYPE_INT32":
        raise ServingError(
            f"{info.path}: {BATCH_INPUT} is {types[BATCH_INPUT]}; Triton's batch inputs are TYPE_INT32 or TYPE_FP32"
        )
    width = CHANNELS * p.patch * p.patch
    pixel_patches, positions = PACKED_INPUTS
    inputs = [
        Tensor(pixel_patches, types[pixel_patches], [-1, width], ragged=True),
        Tensor(positions, types[positions], [-1, 3], ragged=True),
    ]
    output = Tensor(OUTPUT, types[OUTPUT], [-1, info.hidden_size or -1])
    request_bytes = width * _itemsize(types[pixel_patches]) + 3 * _itemsize(types[positions])
    batch = [
        f"# Each request: one item's {pixel_patches} (1, L, {width}) and {positions} (1, L, 3) (contract/packing.py,",
        "# flatten_patches); Triton concatenates a batch's requests 1-D (the graph's flat layout). It batches up to",
        f"# max_batch_size requests, not tokens: {p.call_tokens.max} tokens a call (the profile's budget) are",
        f"# {p.call_tokens.max * request_bytes} bytes of inputs: MAX_BATCH_VOLUME_BYTES for the volume_batching",
        "# strategy (TRITON_BATCH_STRATEGY_PATH) that keeps a batch within it.",
        "batch_input [",
        f'  {{ kind: BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO target_name: "{BATCH_INPUT}" data_type: TYPE_INT32'
        f' source_input: "{positions}" }}',
        "]",
        "batch_output [",
        f'  {{ target_name: "{OUTPUT}" kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "{positions}" }}',
        "]",
    ]
    return inputs, output, batch


def _itemsize(triton: str) -> int:
    return {"TYPE_FP32": 4, "TYPE_FP16": 2, "TYPE_BF16": 2, "TYPE_INT64": 8, "TYPE_INT32": 4}[triton]


def _native(info: ArtifactInfo, options: ServeOptions, header: list[str], group: str) -> str:
    if info.packed:
        inputs, output, batch = packed_native(info)
        return render(info, options, header=header, inputs=inputs, output=output, group=group, batch=batch)
    inputs, output = _request_tensors(info, _manifest_types(info))
    return render(info, options, header=header, inputs=inputs, output=output, group=group)


def onnx_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Triton's ONNX Runtime backend runs the artifact (`model.onnx`, its external data file beside it)."""
    header = ['platform: "onnxruntime_onnx"', 'default_model_filename: "model.onnx"']
    return _native(info, options, header, _group(info, options))


def tensorrt_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Triton's TensorRT backend runs the engine (`model.plan`); every optimisation profile it holds is listed."""
    profiles = info.manifest.extra.get("tensorrt", {}).get("profiles") or [info.manifest.profile]
    names = ", ".join(f'"{i}"' for i in range(len(profiles)))
    group = _group(info, options, gpu_only=True, profiles=f" profile: [ {names} ]")
    header = ['platform: "tensorrt_plan"', 'default_model_filename: "model.plan"']
    return _native(info, options, header, group)


def pytorch_libtorch_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Triton's PyTorch backend runs the TorchScript file (`model.pt`) on the CPU (KIND_CPU) or a GPU (KIND_GPU:
    loaded with that GPU as map location); a frozen artifact that names no device (`extra.movable`) may go either
    way, whatever device it was built on."""
    if info.precision == "bf16":
        raise ServingError(
            f"{info.path}: Triton's PyTorch backend has no BF16 tensors (TYPE_BF16 is not among its data types); "
            "serve a bf16 TorchScript artifact with --python-backend, or export it as fp32/fp16"
        )
    built = "gpu" if info.manifest.device == "cuda" else "cpu"
    if options.instance_kind not in ("auto", built) and info.manifest.extra.get("movable") is not True:
        raise ServingError(
            f"{info.path}: built on {info.manifest.device} and not movable (its manifest lacks extra.movable), "
            f"so it cannot run as instance kind {options.instance_kind!r}"
        )
    header = ['platform: "pytorch_libtorch"', 'default_model_filename: "model.pt"']
    return _native(info, options, header, _group(info, options))


# Triton platform -> its config writer; a kind's platform is its backend description's `triton` (contract/backends.py),
# the Python backend (through runtime.load) for a kind Triton cannot run itself.
WRITERS: dict[str, Callable[[ArtifactInfo, ServeOptions], str]] = {
    "onnxruntime_onnx": onnx_config,
    "tensorrt_plan": tensorrt_config,
    "pytorch_libtorch": pytorch_libtorch_config,
    "python": python_config,
}
PLATFORMS: dict[str, Callable[[ArtifactInfo, ServeOptions], str]] = {
    kind: WRITERS[b.triton[0] if b.triton else "python"] for kind, b in BACKENDS.items()
}


def runs_natively(info: ArtifactInfo) -> bool:
    """Triton runs this artifact itself (its kind has a Triton platform, and a packed one is a flat graph: Triton's
    ragged batching hands a model 1-D inputs, which a packed torch artifact's rows are not)."""
    backend = BACKENDS.get(info.kind)
    return backend is not None and backend.triton is not None and (not info.packed or info.packed_flat)


def model_config(info: ArtifactInfo, options: ServeOptions, python_backend: bool = False) -> str:
    """config.pbtxt for `info` on its native platform, or on the Python backend if `python_backend` or Triton cannot
    run it itself."""
    if python_backend:
        return python_config(info, options)
    writer = PLATFORMS.get(info.kind)
    if writer is None:
        raise ServingError(f"no Triton model config for artifact kind {info.kind!r} (known: {sorted(PLATFORMS)})")
    return writer(info, options) if runs_natively(info) else python_config(info, options)
