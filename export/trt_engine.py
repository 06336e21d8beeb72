"""Kinds "trt" and "trt-rtx": a serialized TensorRT or TensorRT-RTX engine (`.engine`) built from this bundle's ONNX.

    python -m export trt-rtx --model DIR --precision bf16 --profile image-448 --profile video-4x448 \
        --option targets=8.9,12.0 --option timing_cache=artifacts/trt-rtx.cache
    python -m export trt ...     # TensorRT 10.x/11.x, on the GPU the engine will run on

One builder for both: TensorRT-RTX's API is TensorRT's, so everything below is the same code, with the API
(`runtime.backends.tensorrt.TRT` / `TRT_RTX`: module, strong-typing flag, whether a GPU is needed to build, target
compute capabilities) injected. `TensorRTRTXBuilder` only adds the target option.

- Strongly typed network (TensorRT 10: the STRONGLY_TYPED flag; 11 and TensorRT-RTX: always): the engine computes
  in the ONNX graph's own types, so `--precision` picks the ONNX graph that is exported (fp32, fp16 or bf16); there
  are no precision builder flags (TensorRT 11 and TensorRT-RTX have none).
- The ONNX graph comes from the ONNX builder (`export.onnx_model.write_onnx`, dynamic axes covering the union of
  the profiles; written in the staging folder, not kept) or from `options["onnx"]`: an existing `.onnx` of this
  bundle (its manifest is checked: same precision, output layer and weights, profile covering every requested one).
  It is parsed with the API's own ONNX parser (`export.trt_parse`): a rejected node is one error line naming it.
- One optimisation profile per requested ShapeProfile (min/opt/max of both inputs); the runtime picks the profile
  that covers each input. The manifest's `profile` is their union; `extra["tensorrt"]["profiles"]` lists each.
- Options: `opt_level` (builder optimisation level 0-5, default 3), `tf32` (default False: TF32 off keeps fp32 math
  fp32, for parity), `workspace_mib` (workspace memory pool limit), `timing_cache` (file: loaded if it exists and
  fits, written back after the build), `onnx` (see above); trt-rtx only: `targets` (compute capabilities the
  engine runs on, e.g. `8.9` or `8.6,8.9,12.0`, the default; 7.5 only when asked: NVIDIA advises a Turing-only
  engine). TensorRT-RTX's runtime cache (kernels it compiles at load time) belongs to the runtime, not the build.
- The engine always runs on CUDA (`manifest.device` is "cuda" whatever `--device` says).
- The manifest records the API and its version, for trt the GPU and its compute capability (an engine runs only on
  that GPU model), for trt-rtx the target compute capabilities, the network's layer count and the I/O names and
  dtypes as the built network reports them (positions stay INT64), with each profile's min/opt/max.
- Verification against eager runs where the engine can run (a GPU it targets); a TensorRT-RTX engine built on a
  machine without one records why it was not run (`build.verify`), and nothing reports a number that was not
  measured.

The API module is imported lazily, so this module imports everywhere; `unavailable()` says in one line why a
machine cannot build (the module missing - on PyPI the `tensorrt` wheels only download from NVIDIA's index - or, for
trt, no GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from contract.io import INPUT_NAMES, PACKED_INPUT_NAMES
from contract.manifest import file_sha256, write_manifest
from contract.profiles import Profile
from runtime.backends.tensorrt import TRT, TRT_RTX, TensorRTAPI, cuda_unavailable, gpu_info, write_atomic

from .artifact import io_specs, packed_attention
from .base import BuildRequest, BuildResult, ExportError
from .measure import BuildMeter
from .onnx_model import reusable_onnx, union_profile
from .pipeline import BuildContext, Produced, run_build
from .trt_parse import ParsedNetwork, parse_onnx, tensor_facts
from .verify import verify_artifact

if TYPE_CHECKING:
    import tensorrt as trt

DEFAULT_OPT_LEVEL = 3
MIN_BF16_CAPABILITY = (8, 0)  # bf16 kernels need Ampere or newer


def _dims(trt_api: Any, shape: tuple[int, ...]) -> trt.Dims:
    dims: trt.Dims = trt_api.Dims(list(shape))
    return dims


def _read_cache(path: str | None) -> bytes:
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    return b""


def network_io(network: trt.INetworkDefinition, profiles: list[Profile]) -> list[dict[str, Any]]:
    """Every I/O tensor as the built network reports it (name, dtype, shape with -1 for dynamic axes), inputs with
    each optimisation profile's min/opt/max."""
    io = []
    for i in range(network.num_inputs):
        entry = {**tensor_facts(network.get_input(i)), "mode": "input"}
        entry["profiles"] = [[list(p.shapes(w)[entry["name"]]) for w in ("min", "opt", "max")] for p in profiles]
        io.append(entry)
    io += [{**tensor_facts(network.get_output(i)), "mode": "output"} for i in range(network.num_outputs)]
    return io


class TensorRTBuilder:
    """The one TensorRT engine builder; `api` says which TensorRT (TensorRT 10/11 here, TensorRT-RTX below)."""

    kind: ClassVar[str] = "trt"
    api: ClassVar[TensorRTAPI] = TRT

    def unavailable(self, request: BuildRequest) -> str | None:
        missing = self.api.unavailable()
        if missing or self.api.builds_without_gpu:
            return missing
        if not torch.cuda.is_available():
            return (
                f"no CUDA GPU: torch {torch.__version__} sees no CUDA device, and a {self.api.label} engine is built "
                "on the GPU it runs on (`make export-trt-rtx` builds a TensorRT-RTX engine without one)"
            )
        if request.precision == "bf16":
            capability = torch.cuda.get_device_capability()
            if capability < MIN_BF16_CAPABILITY:
                name = torch.cuda.get_device_name()
                return f"bf16 engines need compute capability >= 8.0; {name} is {capability[0]}.{capability[1]}"
        return None

    # -- options ------------------------------------------------------------------------------------------------
    def options(self, request: BuildRequest) -> dict[str, Any]:
        """The build options, checked (ExportError naming the bad one)."""
        opts = request.options
        level = int(opts.get("opt_level", DEFAULT_OPT_LEVEL))
        if not 0 <= level <= 5:
            raise ExportError(f"{self.kind}: opt_level must be 0..5, got {level}")
        workspace = opts.get("workspace_mib")
        if "targets" in opts and not self.api.targets:
            raise ExportError(
                f"{self.kind}: option targets is for trt-rtx; a {self.api.label} engine runs on the GPU that built it"
            )
        return {
            "opt_level": level,
            "tf32": bool(opts.get("tf32", False)),
            "workspace_mib": int(workspace) if workspace is not None else None,
            "timing_cache": str(opts["timing_cache"]) if opts.get("timing_cache") else None,
            "onnx": str(opts["onnx"]) if opts.get("onnx") else None,
        }

    def configure(self, trt_api: Any, config: trt.IBuilderConfig, opts: dict[str, Any]) -> dict[str, Any]:
        """What differs between the APIs in the builder config (TensorRT: nothing); returns facts for the manifest."""
        return {}

    def where_built(self) -> dict[str, Any]:
        return {"gpu": gpu_info()}

    def runnable(self, extra: dict[str, Any]) -> str | None:
        """None if the engine just built can run here (then it is verified against eager), else why not."""
        return cuda_unavailable(f"a {self.api.label} engine")

    # -- build --------------------------------------------------------------------------------------------------
    def build(self, request: BuildRequest) -> BuildResult:
        self.options(request)  # refuse bad options before any work
        result = run_build(self.kind, request, self.unavailable, self._produce)
        if len(request.profiles) > 1:
            # The pipeline's manifest describes the first profile; an engine with several accepts their union (the
            # runtime then picks the optimisation profile covering each input).
            union = union_profile(request.profiles)
            hidden = int(result.manifest.source["config"]["hidden_size"])
            result.manifest.profile = union.to_dict()
            result.manifest.inputs, result.manifest.outputs = io_specs(union, request.precision, hidden)
            write_manifest(result.path, result.manifest)
        return result

    def _onnx(self, ctx: BuildContext, opts: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        request = ctx.request
        if opts["onnx"]:
            path = Path(opts["onnx"])
            ctx.meter.stage("onnx", f"using {path}")
            try:
                return path, reusable_onnx(path, request, request.precision)
            except ExportError as exc:
                raise ExportError(f"{self.kind}: {exc}") from None
        from .onnx_model import write_onnx

        union = union_profile(request.profiles)
        ctx.meter.stage("onnx", f"exporting the {request.precision} graph, dynamic over {union.name}")
        # The ONNX builder's writer with this build's meter (a second meter would reset the peak-RSS measurement).
        path = ctx.staged.parent / "onnx" / f"model-{request.precision}.onnx"
        attention = packed_attention(self.kind, request)
        info = write_onnx(
            request, path, profile=union, precision=request.precision, meter=ctx.meter, attention=attention
        )
        path = info.path
        return path, {"path": None, "sha256": file_sha256(path), "profile": union.name, "built": True}

    def _parse(self, path: Path, meter: BuildMeter, packed: bool) -> ParsedNetwork:
        meter.stage("parse", f"{self.api.label} ONNX parser, strongly typed network from {path.name}")
        try:
            parsed = parse_onnx(path, self.api)
        except ExportError as exc:
            raise ExportError(f"{self.kind}: {exc}") from None
        names = [t["name"] for t in parsed.inputs()]
        expected = PACKED_INPUT_NAMES if packed else INPUT_NAMES
        if sorted(names) != sorted(expected):
            raise ExportError(f"{self.kind}: the network's inputs are {names}, expected {list(expected)}")
        return parsed

    def _produce(self, ctx: BuildContext) -> Produced:
        if TYPE_CHECKING:  # TensorRT-RTX mirrors TensorRT's API: both are checked against tensorrt-stubs
            import tensorrt as trt
        else:
            trt = self.api.module()

        request, meter, api = ctx.request, ctx.meter, self.api
        opts = self.options(request)
        onnx_path, onnx_facts = self._onnx(ctx, opts)
        parsed = self._parse(onnx_path, meter, request.profile.packed)
        builder, network = parsed.builder, parsed.network

        config = builder.create_builder_config()
        config.builder_optimization_level = opts["opt_level"]
        if opts["workspace_mib"] is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts["workspace_mib"] << 20)
        if opts["tf32"]:
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT; off keeps fp32 math fp32
        differs = self.configure(trt, config, opts)
        for profile in request.profiles:
            trt_profile = builder.create_optimization_profile()
            lo, opt, hi = (profile.shapes(which) for which in ("min", "opt", "max"))
            for name in lo:
                trt_profile.set_shape(name, _dims(trt, lo[name]), _dims(trt, opt[name]), _dims(trt, hi[name]))
            if config.add_optimization_profile(trt_profile) < 0:
                raise ExportError(f"{self.kind}: {api.label} refused profile {profile.name!r}: {profile.to_dict()}")

        cache, cache_loaded = self._timing_cache(config, opts["timing_cache"], meter)
        where = self.where_built()
        on = where["gpu"]["name"] if where.get("gpu") else "this machine, ahead of time"
        meter.stage(
            "build",
            f"{api.label} {trt.__version__} on {on}, {len(request.profiles)} profile(s), opt level {opts['opt_level']}"
            + "".join(f", {k} {v}" for k, v in differs.items()),
        )
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ExportError(f"{self.kind}: {api.label} could not build the engine (its log above says why)")
        with open(ctx.staged, "wb") as f:
            f.write(plan)
        if opts["timing_cache"]:
            write_atomic(opts["timing_cache"], bytes(memoryview(config.get_timing_cache().serialize())))
        io = network_io(network, request.profiles)
        layers = {"layers": parsed.num_layers, "layer_types": parsed.layer_types}
        del plan, cache, config, parsed, network, builder  # host memory back before the verification loads the model

        extra = {
            "loader": f"runtime.load(path) (runtime/backends/tensorrt.py); C++: runtime/cpp trt_runner ({self.kind})",
            "tensorrt": {
                "api": api.label,
                "version": trt.__version__,
                "strongly_typed": True,
                "opt_level": opts["opt_level"],
                "tf32": opts["tf32"],
                "workspace_mib": opts["workspace_mib"],
                "timing_cache": {"path": opts["timing_cache"], "loaded": cache_loaded},
                "profiles": [p.to_dict() for p in request.profiles],
                **differs,
            },
            **where,
            "network": layers,
            "engine_io": io,
            "onnx": onnx_facts,
        }
        reason = self.runnable(extra)
        if reason:
            meter.stage("verify", f"not run: {reason}")
            verify: Any = {"run": False, "reason": reason}
        else:
            meter.stage("verify", "run each profile's min shape against eager on the GPU")
            verify = self._verify(ctx)
        return Produced(extra=extra, build={"verify": verify}, device="cuda", tools=api.distributions)

    @staticmethod
    def _timing_cache(config: trt.IBuilderConfig, path: str | None, meter: BuildMeter) -> tuple[trt.ITimingCache, bool]:
        """Attach the cache read from `path` (if it exists and fits this GPU and TensorRT) or a fresh one."""
        data = _read_cache(path)
        if data:
            try:
                cache = config.create_timing_cache(data)
                if config.set_timing_cache(cache, False):
                    return cache, True
            except Exception:  # unreadable cache file: rebuilt below
                pass
            meter.say(f"timing cache {path} does not fit this GPU/TensorRT (or is damaged); starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
        return cache, False

    def _verify(self, ctx: BuildContext) -> list[dict[str, Any]]:
        from runtime.backends.tensorrt import TensorRTEngine

        from .wrapper import load_wrapper

        request = ctx.request
        attention = packed_attention(self.kind, request)
        wrapper = load_wrapper(request.model_dir, request.precision, request.output_layer, "cuda", attention)
        engine = TensorRTEngine(ctx.staged, torch.device("cuda", torch.cuda.current_device()), self.api)
        names = PACKED_INPUT_NAMES if request.profile.packed else INPUT_NAMES

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            return engine.run(dict(zip(names, inputs, strict=True)))

        try:
            return [
                verify_artifact(self.kind, run, wrapper, profile, request.precision, "cuda")
                for profile in request.profiles
            ]
        finally:
            engine.close()


def parse_targets(value: Any, api: TensorRTAPI = TRT_RTX) -> list[str]:
    """`8.9`, `"8.6,8.9"` or `["8.6", "12.0"]` -> ["8.6", "8.9", ...]; ExportError naming an unknown one."""
    items = value if isinstance(value, list) else str(value).split(",")
    targets = [str(item).strip() for item in items if str(item).strip()]
    unknown = [t for t in targets if t not in api.targets]
    if unknown or not targets:
        raise ExportError(
            f"{api.kind}: option targets: {', '.join(unknown) or 'empty'} is not a {api.label} compute capability "
            f"(use {', '.join(api.targets)}; default {','.join(api.default_targets)})"
        )
    return sorted(set(targets), key=lambda t: tuple(int(x) for x in t.split(".")))


class TensorRTRTXBuilder(TensorRTBuilder):
    """TensorRT-RTX: the same build, ahead of time on any machine (no GPU needed), for target compute capabilities."""

    kind: ClassVar[str] = "trt-rtx"
    api: ClassVar[TensorRTAPI] = TRT_RTX

    def options(self, request: BuildRequest) -> dict[str, Any]:
        opts = super().options(request)
        opts["targets"] = parse_targets(request.options.get("targets", list(self.api.default_targets)), self.api)
        return opts

    def configure(self, trt_api: Any, config: trt.IBuilderConfig, opts: dict[str, Any]) -> dict[str, Any]:
        # IBuilderConfig.num_compute_capabilities / set_compute_capability(ComputeCapability.SMxy, index): TensorRT-RTX
        # only (not in tensorrt-stubs, hence Any).
        rtx_config: Any = config
        rtx_config.num_compute_capabilities = len(opts["targets"])
        for index, target in enumerate(opts["targets"]):
            member = getattr(trt_api.ComputeCapability, "SM" + target.replace(".", ""))
            if not rtx_config.set_compute_capability(member, index):
                raise ExportError(f"{self.kind}: {self.api.label} refused target compute capability {target}")
        return {"targets": opts["targets"]}

    def where_built(self) -> dict[str, Any]:
        return {"built_on": "gpu" if torch.cuda.is_available() else "cpu (ahead of time, no GPU)"}

    def runnable(self, extra: dict[str, Any]) -> str | None:
        missing = cuda_unavailable(f"a {self.api.label} engine")
        if missing:
            return missing
        here = "{}.{}".format(*torch.cuda.get_device_capability())
        targets = extra["tensorrt"]["targets"]
        if here not in targets:
            return f"this GPU is compute capability {here}, the engine targets {'/'.join(targets)}"
        return None
