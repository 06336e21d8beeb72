"""kind "openvino": an OpenVINO IR (`.xml` + its `.bin` weights, both in the manifest's `files`) on OpenVINO's CPU.

The IR is compiled with exactly the config its manifest records (`extra.compile_config`: INFERENCE_PRECISION_HINT
f32 or bf16, PERFORMANCE_HINT LATENCY), so the runtime computes what the builder verified. Inputs come validated by
`runtime.base.Runner` (dtype, shape inside the profile, positions); the IR's own I/O element types are checked
against the manifest at load. A bf16 IR takes and returns bf16 (numpy has no bf16: the bits go through an int16
view).

`provider` names the precision OpenVINO compiled the IR with, read back from the compiled model: a bf16 IR runs in
bf16 on CPUs with AVX-512 BF16 or AMX and in f32 elsewhere (OpenVINO's CPU plugin drops the bf16 hint where the
CPU has no bf16; `OPTIMIZATION_CAPABILITIES` lists BF16 where it has).

Devices: the CPU only. OpenVINO's other plugins drive Intel GPUs/NPUs, which torch names no device for here; a
torch `cuda` device is refused in one line (runtime/loader.py refuses it first; the runner checks again when built
directly), naming the devices OpenVINO reports. One infer request, serialised by the runner's lock
(`thread_safe = False`): OpenVINO already spreads one request over every core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..base import LoadError, NotRunnableHere, Runner

DEVICE = "CPU"
OV_DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "i64": torch.int64, "i32": torch.int32}


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise NotRunnableHere(
            f"openvino is not installed ({exc}); pip install openvino (pinned in requirements.txt)"
        ) from None
    return openvino


class OpenVINORunner(Runner):
    kind = "openvino"
    thread_safe = False

    def _load(self) -> None:
        ov = self._ov = _openvino()
        core = ov.Core()
        devices = list(core.available_devices)
        if self.device.type != "cpu":
            raise LoadError(
                f"{self.path}: OpenVINO artifacts run on the CPU, not {self.device} (OpenVINO here reports "
                f"{devices}; its GPU plugin drives Intel GPUs, not CUDA); load with device='cpu'"
            )
        if DEVICE not in devices:
            raise LoadError(f"{self.path}: OpenVINO {ov.__version__} reports no CPU device (only {devices})")
        config = self.manifest.extra.get("compile_config")
        if not isinstance(config, dict) or "INFERENCE_PRECISION_HINT" not in config:
            raise LoadError(f"{self.path}: its manifest records no extra.compile_config (not built by this bundle?)")
        try:
            model = core.read_model(str(self.path))
            self._compiled = core.compile_model(model, DEVICE, {str(k): str(v) for k, v in config.items()})
            self._core = core
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LoadError(f"{self.path}: OpenVINO {ov.__version__} cannot load it: {first}") from None
        self._check_io(model)
        self._request = self._compiled.create_infer_request()
        self._config = {str(k): str(v) for k, v in config.items()}  # the ov.Model itself is not kept (its weights)
        self._names = [str(i["name"]) for i in self.manifest.inputs]
        # What the plugin really computes in: a bf16 hint on a CPU without native bf16 (no AVX-512 BF16/AMX) compiles
        # to f32. Read back, never assumed: the provider names it, and `inference_precision` keeps it.
        self.inference_precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        self.provider = f"openvino-{DEVICE}-{self.inference_precision}"

    def computes_tf32(self) -> bool:
        return False  # OpenVINO's CPU plugin: no TF32

    def _check_io(self, model: Any) -> None:
        """The IR's I/O names and element types are the manifest's (a swapped .xml is caught by sha256 already;
        this catches a manifest written for another graph)."""
        declared = {str(s["name"]): str(s["dtype"]) for s in [*self.manifest.inputs, *self.manifest.outputs]}
        actual = {
            port.get_any_name(): OV_DTYPES.get(port.get_element_type().get_type_name())
            for port in [*model.inputs, *model.outputs]
        }
        for name, dtype in declared.items():
            got = actual.get(name)
            if got is None or str(got).removeprefix("torch.") != dtype:
                raise LoadError(f"{self.path}: IR port {name!r} is {got}, its manifest says {dtype}")

    def _tensor(self, tensor: torch.Tensor) -> Any:
        if tensor.dtype == torch.bfloat16:  # numpy has no bf16: hand OpenVINO the bits
            return self._ov.Tensor(tensor.view(torch.int16).numpy(), list(tensor.shape), self._ov.Type.bf16)
        return self._ov.Tensor(np.ascontiguousarray(tensor.numpy()))

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: self._tensor(t) for name, t in zip(self._names, inputs, strict=True)}
        self._request.infer(feeds)
        data = torch.from_numpy(np.array(self._request.get_output_tensor(0).data, copy=True))
        return data.view(torch.bfloat16) if self.dtype == torch.bfloat16 else data

    def op_times(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> list[dict[str, Any]]:
        """One run with OpenVINO's performance counters on (a second compilation of the same IR and config, plus
        PERF_COUNT): per executed node its type, the kernel that ran it, seconds, and `fused`: the op types of the
        IR's layers it runs (a "Subgraph" node fuses several, e.g. attention's MatMul, Softmax and MatMul; read from
        the compiled model's `originalLayersNames`). For benchmarks/op_profile.py."""
        if getattr(self, "_profiled", None) is None:
            model = self._core.read_model(str(self.path))
            self._profiled = self._core.compile_model(model, DEVICE, {**self._config, "PERF_COUNT": "YES"})
            self._fused = _fused_types(model, self._profiled)
        request = self._profiled.create_infer_request()
        pv, pos = self.prepare(pixel_values, patch_positions)
        request.infer({name: self._tensor(t) for name, t in zip(self._names, (pv, pos), strict=True)})
        return [
            {
                "name": i.node_name,
                "type": i.node_type,
                "exec_type": i.exec_type,
                "seconds": i.real_time.total_seconds(),
                "fused": self._fused.get(i.node_name, []),
            }
            for i in request.profiling_info
            if str(i.status).endswith("EXECUTED")
        ]


def _fused_types(model: Any, compiled: Any) -> dict[str, list[str]]:
    """Executed node name -> the op types of the IR layers it runs (its rt_info `originalLayersNames`)."""
    types = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    fused: dict[str, list[str]] = {}
    for node in compiled.get_runtime_model().get_ops():
        info = node.get_rt_info()
        names = str(info["originalLayersNames"].astype(str)) if "originalLayersNames" in info else ""
        fused[node.get_friendly_name()] = [types[n] for n in names.split(",") if n in types]
    return fused
