"""Kind "openvino": an OpenVINO IR (`.xml` graph + `.bin` weights) converted from the bundle's own fp32 ONNX graph.

- The graph is always the fp32 ONNX of `export/onnx_model.py` (`write_onnx`, into the staging folder), converted
  by OpenVINO's ONNX frontend (`Core.read_model`: what `openvino.convert_model` runs, minus its telemetry call)
  and written with `openvino.save_model(..., compress_to_fp16=False)`: weights stay
  fp32 in the `.bin` side file. `--precision` picks the **inference precision** the CPU plugin compiles the graph
  with (`INFERENCE_PRECISION_HINT`): fp32 -> f32; bf16 -> bf16 (matmuls, convolution and attention in bf16 on
  AVX-512 BF16 / AMX CPUs, with fp32 accumulation; softmax, normalisation and RoPE stay f32 where the plugin keeps
  them). The precision is recorded three times: the manifest's `precision`, its `extra.compile_config` (what the
  runner passes to `Core.compile_model`, exactly) and the IR's rt_info (`onevision/precision`).
- The IR's I/O dtypes are the manifest's: a bf16 IR takes and returns bf16 (an OpenVINO PrePostProcessor puts the
  bf16 <-> f32 conversions inside the graph), so every kind of a given precision is called the same way.
- The shape profile is written into the IR as bounded dynamic dims (batch 1..32, tokens 1024..1024, ...), so the
  plugin knows the ranges and an input outside them is refused by OpenVINO too (the runtime refuses it first).
- fp16 is refused: OpenVINO's CPU plugin computes fp16 only on CPUs with AVX-512 FP16 / AMX-FP16, and the bundle
  cannot check such a build here.
- Verified at build time like every kind (`export/verify.py`): the IR, compiled with its own config, at the
  profile's min shape against eager sdpa at the same precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.backends import BACKENDS
from contract.io import INPUT_NAMES, OUTPUT_NAMES, PACKED_INPUT_NAMES, SIGNATURE
from contract.manifest import file_sha256
from contract.profiles import AXES, PackedProfile, Profile, Range
from models.tf32 import exact_float32

from .artifact import packed_attention
from .base import BuildRequest, BuildResult
from .inputs import example_facts
from .onnx_model import reusable_onnx, write_onnx
from .pipeline import BuildContext, Produced, run_build
from .verify import verify_artifact
from .wrapper import EncoderExport, load_wrapper

# precision -> the CPU plugin's INFERENCE_PRECISION_HINT (the value Core.compile_model gets)
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}
DEVICE = "CPU"  # the OpenVINO device the bundle builds and runs IRs for (runtime/backends/openvino.py)
RT_INFO_PRECISION = ["onevision", "precision"]


def compile_config(precision: str) -> dict[str, str]:
    """What `Core.compile_model(model, "CPU", config)` gets for an IR of `precision` (recorded in the manifest)."""
    return {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY"}


def _dim(ov: Any, r: Range) -> Any:
    return ov.Dimension(r.min, r.max)


def profile_shapes(ov: Any, profile: Profile) -> dict[str, Any]:
    """The profile as OpenVINO bounded partial shapes of the inputs (packed: each flat input's length bounds)."""
    if isinstance(profile, PackedProfile):
        lo, hi = profile.shapes("min"), profile.shapes("max")
        return {name: ov.PartialShape([ov.Dimension(lo[name][0], hi[name][0])]) for name in lo}
    dims = {axis: _dim(ov, getattr(profile, axis)) for axis in AXES}
    dims["tokens"] = _dim(ov, profile.token_range)
    shapes = {name: [a if isinstance(a, int) else dims[a] for a in SIGNATURE[name]] for name in INPUT_NAMES}
    return {name: ov.PartialShape(shape) for name, shape in shapes.items()}


def convert(onnx_path: Path, profile: Profile, precision: str) -> Any:
    """The ONNX graph as an OpenVINO model with the profile's bounds and the precision's I/O dtypes."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    # Core.read_model runs the same ONNX frontend as openvino.convert_model (outputs bit-identical, checked on the
    # tiny model at f32 and bf16) without convert_model's usage-telemetry call.
    model = ov.Core().read_model(str(onnx_path))
    model.reshape(profile_shapes(ov, profile))
    if precision == "bf16":
        ppp = PrePostProcessor(model)
        pixels = (PACKED_INPUT_NAMES if profile.packed else INPUT_NAMES)[0]  # the float input, batched or packed
        ppp.input(pixels).tensor().set_element_type(ov.Type.bf16)
        ppp.output(OUTPUT_NAMES[0]).tensor().set_element_type(ov.Type.bf16)
        model = ppp.build()
    model.set_rt_info(precision, RT_INFO_PRECISION)
    return model


def _ov_tensor(ov: Any, tensor: torch.Tensor) -> Any:
    if tensor.dtype == torch.bfloat16:  # numpy has no bf16: hand OpenVINO the bits
        return ov.Tensor(tensor.contiguous().view(torch.int16).numpy(), list(tensor.shape), ov.Type.bf16)
    return ov.Tensor(np.ascontiguousarray(tensor.numpy()))


def _ov_runner(xml: Path, precision: str) -> Any:
    """A plain call of the staged IR for the build-time check (the runtime's runner is the user-facing one)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), DEVICE, compile_config(precision))
    request = compiled.create_infer_request()

    names = [port.get_any_name() for port in compiled.inputs]

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        request.infer({name: _ov_tensor(ov, tensor) for name, tensor in zip(names, inputs, strict=True)})
        out = request.get_output_tensor(0)
        data = torch.from_numpy(np.array(out.data, copy=True))
        return data.view(torch.bfloat16) if precision == "bf16" else data

    return run


class OpenVINOBuilder:
    kind = "openvino"

    def unavailable(self, request: BuildRequest) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "needs the openvino package (pip install openvino; pinned in requirements.txt), not installed here"
        if request.precision not in INFERENCE_PRECISION:
            return (
                f"precision {request.precision} is not built: OpenVINO's CPU plugin computes "
                f"{', '.join(INFERENCE_PRECISION)} here (fp16 needs AVX-512 FP16 / AMX-FP16)"
            )
        if request.device != "cpu":
            return f"builds IRs for OpenVINO's CPU device only, not --device {request.device}"
        return None

    def build(self, request: BuildRequest) -> BuildResult:
        return run_build(self.kind, request, self.unavailable, self._produce)

    def _onnx(self, ctx: BuildContext, wrapper: EncoderExport) -> tuple[Path, dict[str, Any]]:
        """The fp32 ONNX graph to convert: `options["onnx"]` (an ONNX artifact of this bundle, checked against the
        request; `export all` passes the one it just built), else one exported here into the staging folder."""
        request = ctx.request
        given = request.options.get("onnx")
        if given:
            ctx.meter.stage("onnx", f"using {given}")
            return Path(given), reusable_onnx(Path(given), request, "fp32")
        folder = ctx.staged.parent / "onnx"
        folder.mkdir()
        info = write_onnx(request, folder / "model.onnx", wrapper=wrapper, profile=request.profile, precision="fp32")
        facts = {"path": None, "sha256": file_sha256(info.path), "opset": info.opset, "ops": info.ops, "built": True}
        return info.path, facts

    def _produce(self, ctx: BuildContext) -> Produced:
        import openvino as ov

        request, meter = ctx.request, ctx.meter
        meter.stage("load", f"{request.model_dir} as fp32 (the graph OpenVINO converts)")
        wrapper = load_wrapper(
            request.model_dir, "fp32", request.output_layer, packed=packed_attention(self.kind, request)
        )
        onnx_path, onnx_facts = self._onnx(ctx, wrapper)
        hint = INFERENCE_PRECISION[request.precision]
        meter.stage("convert", f"OpenVINO ONNX frontend + save_model (weights fp32, inference precision {hint})")
        model = convert(onnx_path, request.profile, request.precision)
        ov.save_model(model, str(ctx.staged), compress_to_fp16=False)
        del model
        weights = ctx.staged.with_name(BACKENDS["openvino"].side_names(ctx.staged)[0])  # where save_model wrote them
        meter.stage("verify", f"OpenVINO CPU ({hint}) at the profile's min shape against eager {request.precision}")
        wrapper = wrapper.to(torch.bfloat16) if request.precision == "bf16" else wrapper
        with exact_float32():
            verify = verify_artifact(
                self.kind, _ov_runner(ctx.staged, request.precision), wrapper, request.profile, request.precision
            )
        extra = {
            "loader": f"openvino.Core().compile_model(path, {DEVICE!r}, extra['compile_config'])",
            "compile_config": compile_config(request.precision),
            "openvino_device": DEVICE,
            "weights_precision": "fp32",
            "converted_from": "the bundle's fp32 ONNX graph, OpenVINO's ONNX frontend",
            "onnx": onnx_facts,
            **example_facts(request.profile),
        }
        return Produced(extra_files=[weights], extra=extra, build={"verify": verify}, tools=("openvino",))
