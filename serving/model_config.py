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
Triton's dynamic batcher only puts requests of equal shapes into one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.backends import BACKENDS
from contract.dtypes import TRITON_TYPES  # manifest dtype (torch or numpy spelling) -> Triton TYPE_*

from . import INPUTS, MODEL_NAME, OUTPUT
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
    """Per-request dims (batch excluded) of inputs and output; -1 where the profile leaves an axis dynamic."""
    p = info.profile
    t, h, w = (r.min if r.static else -1 for r in (p.frames, p.height, p.width))
    tokens = p.tokens("min") if p.frames.static and p.height.static and p.width.static else -1
    return {
        "pixel_values": [3, t, h, w],
        "patch_positions": [tokens, 3],
        OUTPUT: [tokens, info.hidden_size or -1],
    }


def preferred_sizes(info: ArtifactInfo, options: ServeOptions) -> list[int]:
    b = info.profile.batch
    sizes = list(options.preferred_batch_sizes) or sorted({s for s in (b.opt, b.max) if s > 1})
    bad = [s for s in sizes if not 1 <= s <= b.max]
    if bad:
        raise ServingError(f"preferred batch size {bad[0]} outside the profile's batch range [1, {b.max}]")
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


def _tensor(name: str, dtype: str, shape: list[int]) -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(str(d) for d in shape)} ] }}'


def render(
    info: ArtifactInfo,
    options: ServeOptions,
    *,
    header: list[str],
    types: dict[str, str],
    group: str,
) -> str:
    """The config.pbtxt text shared by every platform."""
    d = dims(info)
    lines = [
        f"# {info.path.name}: {info.kind} {info.precision}, profile {info.profile.name!r} "
        f"(batch {info.profile.batch.min}..{info.profile.batch.max}). Written by `python -m serving repository`.",
        f'name: "{options.model_name}"',
        *header,
        f"max_batch_size: {info.profile.batch.max}",
        "input [",
        ",\n".join(_tensor(n, types[n], d[n]) for n in INPUTS),
        "]",
        "output [",
        _tensor(OUTPUT, types[OUTPUT], d[OUTPUT]),
        "]",
        "dynamic_batching {",
        *(f"  preferred_batch_size: {s}" for s in preferred_sizes(info, options)),
        f"  max_queue_delay_microseconds: {options.max_queue_delay_us}",
        "}",
        f"instance_group [ {group} ]",
    ]
    for key, value in sorted(options.parameters.items()):
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def _manifest_types(info: ArtifactInfo) -> dict[str, str]:
    return {name: triton_type(info.io(name)["dtype"]) for name in (*INPUTS, OUTPUT)}


def python_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Python backend running `triton_model.py` (runtime.load); bf16 pixel values and outputs travel as FP32."""
    wire = {"fp32": "TYPE_FP32", "fp16": "TYPE_FP16", "bf16": "TYPE_FP32"}
    if info.precision not in wire:
        raise ServingError(f"{info.path}: unknown precision {info.precision!r}")
    types = {"pixel_values": wire[info.precision], "patch_positions": "TYPE_INT64", OUTPUT: wire[info.precision]}
    return render(info, options, header=['backend: "python"'], types=types, group=_group(info, options))


def onnx_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Triton's ONNX Runtime backend runs the artifact (`model.onnx`, its external data file beside it)."""
    header = ['platform: "onnxruntime_onnx"', 'default_model_filename: "model.onnx"']
    return render(info, options, header=header, types=_manifest_types(info), group=_group(info, options))


def tensorrt_config(info: ArtifactInfo, options: ServeOptions) -> str:
    """Triton's TensorRT backend runs the engine (`model.plan`); every optimisation profile it holds is listed."""
    profiles = info.manifest.extra.get("tensorrt", {}).get("profiles") or [info.manifest.profile]
    names = ", ".join(f'"{i}"' for i in range(len(profiles)))
    group = _group(info, options, gpu_only=True, profiles=f" profile: [ {names} ]")
    header = ['platform: "tensorrt_plan"', 'default_model_filename: "model.plan"']
    return render(info, options, header=header, types=_manifest_types(info), group=group)


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
    return render(info, options, header=header, types=_manifest_types(info), group=_group(info, options))


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


def model_config(info: ArtifactInfo, options: ServeOptions, python_backend: bool = False) -> str:
    """config.pbtxt for `info` on its native platform, or on the Python backend if `python_backend`."""
    if python_backend:
        return python_config(info, options)
    writer = PLATFORMS.get(info.kind)
    if writer is None:
        raise ServingError(f"no Triton model config for artifact kind {info.kind!r} (known: {sorted(PLATFORMS)})")
    return writer(info, options)
