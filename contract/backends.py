"""One description per artifact kind; every registry of the bundle is derived from `BACKENDS`.

A kind is a builder (`export/<module>.py`) and a runner (`runtime/backends/<module>.py`) plus this one line: the
file suffix and side files, the devices it runs on, how the parity suite localises a failure in it, and how Triton
serves it. `export.BUILDERS`, `contract.manifest.KINDS`/`SUFFIX`, `runtime.loader`'s backend and device tables, the
parity suite's device pinning, localisation probes and export device, the engine kinds' multi-profile rule and the
serving model-repository platforms all read it. Adding a backend: the README's "Adding a backend" section.

Imports only the standard library: builder and runner are "module:Class" strings, imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MOVES = ("cpu", "cuda")  # `devices` of a kind whose saved program names no device


@dataclass(frozen=True)
class Backend:
    kind: str  # the manifest's `kind`
    label: str  # what a message calls one artifact of this kind
    suffix: str  # the artifact file's suffix
    builder: str  # "module:Class", an export.base.Builder
    runner: str  # "module:Class", a runtime.base.Runner
    # Device types it runs on; None: only the device type it was built for (the manifest's `device`).
    devices: tuple[str, ...] | None
    why_fixed: str = ""  # the reason a runtime gives when asked for another device ({asked}: the device asked for)
    side_files: tuple[str, ...] = ()  # files beside it, "{name}" the artifact's file name, "{stem}" without suffix
    build_device: str | None = None  # the device it is always built for (None: the one the user asks for)
    multi_profile: bool = False  # one artifact holds one optimisation profile per --profile (TensorRT engines)
    # It converts the bundle's ONNX graph (`options["onnx"]`: an ONNX artifact to reuse, else it exports its own):
    # "same" = the graph of the requested precision (strongly typed TensorRT engines), "fp32" = always the fp32 graph
    # (OpenVINO compiles it at the requested inference precision); None = it builds from the model itself.
    from_onnx: str | None = None
    # Packed artifacts (contract/packing.py): how attention keeps each item to itself ("mask" | "padded",
    # models/packing.py; chosen per kind by the mixed-workload benchmark, README "Packed batches"); None: this kind
    # cannot be exported packed, and its runners refuse packed calls.
    packed: str | None = None
    # Its packed inputs are flat (ONNX graphs and what is built from them: contract/packing.py), else rows.
    packed_flat: bool = False
    onnx_graph: bool = False  # its artifact is the bundle's ONNX graph (what `from_onnx` kinds convert)
    # Serving's default choice (`make serve` without ARTIFACT): rank per "device/precision" (1 = first), from the
    # README's benchmarks where measured (CPU fp32: onnxruntime 1.96x eager, AOTInductor 1.83x, pt2 1.05x,
    # TorchScript 1.02x; CPU bf16: OpenVINO 1.40x, AOTInductor 1.03x); CUDA ranks are not measured yet (no GPU has
    # been lent): TensorRT first as NVIDIA's own runtime. A kind absent for a device/precision is not chosen there.
    serving: tuple[tuple[str, int], ...] = ()
    auto_export: tuple[str, ...] = ()  # devices where `python -m parity` exports it into an empty artifact folder
    quick: bool = False  # builds in seconds without a compiler: what `make bench-quick` exports on the fly
    cpp: bool = False  # the C++ runtime runs it: one line in runtime/cpp/src/runtime.cpp's backend_factories()

    # Parity localisation: "program" (hidden states read from the torch.export graph), "onnx-outputs" (from the ONNX
    # graph's intermediate outputs) or "rebuild" (compiled: bisect over truncated rebuilds of the same kind).
    probe: str = "rebuild"
    # Triton Inference Server: (platform, model file name) of the native backend; None: served by the Python backend
    # through runtime.load.
    triton: tuple[str, str] | None = None

    def onnx_precision(self, precision: str) -> str | None:
        """The precision of the ONNX graph an artifact of `precision` converts (None: it converts none)."""
        return precision if self.from_onnx == "same" else self.from_onnx

    def rank(self, device: str, precision: str) -> int | None:
        """Serving's preference for this kind on `device` ("cpu" | "cuda[:N]") at `precision` (lower first)."""
        ranks = dict(self.serving)
        device_type = device.split(":")[0]
        return ranks.get(f"{device_type}/{precision}", ranks.get(device_type))

    @property
    def movable(self) -> bool:
        """Runs on another device type than the one it was built on."""
        return self.devices is not None and len(self.devices) > 1

    def side_names(self, artifact: str | Path) -> list[str]:
        """Names of the side files of an artifact of this kind (beside it, in the same folder)."""
        name = Path(artifact).name
        return [pattern.format(name=name, stem=Path(name).stem) for pattern in self.side_files]


BACKENDS: dict[str, Backend] = {
    b.kind: b
    for b in (
        Backend(
            "pt2",
            "torch.export program",
            ".pt2",
            "export.torch_export:TorchExportBuilder",
            "runtime.backends.torch_export:TorchExportRunner",
            MOVES,
            probe="program",
            packed="padded",
            serving=(("cpu/fp32", 4), ("cpu/bf16", 3), ("cuda", 5)),
            auto_export=("cpu", "cuda"),
            quick=True,
        ),
        Backend(
            "aoti",
            "AOTInductor package",
            ".pt2",
            "export.aoti:AOTInductorBuilder",
            "runtime.backends.aoti:AOTIRunner",
            None,
            why_fixed="an AOTInductor package is compiled for one device type: export another with `--device "
            "{asked}`, or load the pt2/onnx artifact, which move between devices",
            packed="padded",
            serving=(("cpu/fp32", 2), ("cpu/bf16", 2), ("cuda", 3)),
            auto_export=("cuda",),
            cpp=True,
        ),
        Backend(
            "onnx",
            "ONNX model",
            ".onnx",
            "export.onnx_model:OnnxBuilder",
            "runtime.backends.onnx:OnnxRunner",
            MOVES,
            side_files=("{name}.data",),
            probe="onnx-outputs",
            triton=("onnxruntime_onnx", "model.onnx"),
            packed="mask",
            packed_flat=True,
            onnx_graph=True,
            serving=(("cpu/fp32", 1), ("cuda", 4)),
            auto_export=("cuda",),
            quick=True,
        ),
        Backend(
            "trt",
            "TensorRT engine",
            ".engine",
            "export.trt_engine:TensorRTBuilder",
            "runtime.backends.tensorrt:TensorRTRunner",
            ("cuda",),
            why_fixed="a TensorRT engine runs on a CUDA GPU only",
            build_device="cuda",
            multi_profile=True,
            from_onnx="same",
            triton=("tensorrt_plan", "model.plan"),
            packed="mask",
            packed_flat=True,
            serving=(("cuda", 1),),
            auto_export=("cuda",),
            cpp=True,
        ),
        Backend(
            "trt-rtx",
            "TensorRT-RTX engine",
            ".engine",
            "export.trt_engine:TensorRTRTXBuilder",
            "runtime.backends.tensorrt:TensorRTRTXRunner",
            ("cuda",),
            why_fixed="a TensorRT-RTX engine runs on a CUDA GPU only",
            build_device="cuda",
            multi_profile=True,
            from_onnx="same",
            packed="mask",
            packed_flat=True,
            serving=(("cuda", 2),),
            cpp=True,
        ),
        Backend(
            "torchscript",
            "TorchScript module",
            ".pt",
            "export.torchscript:TorchScriptBuilder",
            "runtime.backends.torchscript:TorchScriptRunner",
            MOVES,
            triton=("pytorch_libtorch", "model.pt"),
            packed="mask",
            serving=(("cpu/fp32", 5), ("cpu/bf16", 4), ("cuda", 6)),
            quick=True,
            cpp=True,
        ),
        Backend(
            "openvino",
            "OpenVINO IR",
            ".xml",
            "export.openvino_ir:OpenVINOBuilder",
            "runtime.backends.openvino:OpenVINORunner",
            ("cpu",),
            why_fixed="the bundle runs OpenVINO IRs on OpenVINO's CPU device only",
            side_files=("{stem}.bin",),
            from_onnx="fp32",
            packed="mask",
            packed_flat=True,
            serving=(("cpu/fp32", 3), ("cpu/bf16", 1)),
        ),
    )
}
KINDS = tuple(BACKENDS)


class Unresolvable(Exception):
    """A "module:Name" string that names nothing importable here; the message says why in one line."""


def resolve(spec: str) -> Any:
    """The object a "module:Name" string names (a builder or runner class), imported on first use."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise Unresolvable(f"module {module_name} is not in this checkout") from None
        raise Unresolvable(f"needs the Python package {exc.name!r}, which is not installed here") from None
    except ImportError as exc:
        raise Unresolvable(f"{module_name} cannot be imported here: {exc}") from None
    if not hasattr(module, name):
        raise Unresolvable(f"{module_name} has no {name}")
    return getattr(module, name)


def backend(kind: str) -> Backend:
    """The description of `kind`; KeyError naming the known kinds."""
    try:
        return BACKENDS[kind]
    except KeyError:
        raise KeyError(f"unknown artifact kind {kind!r}: known kinds are {', '.join(KINDS)}") from None
