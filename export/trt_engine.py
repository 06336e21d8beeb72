"""Kind "trt": a serialized TensorRT engine (`.engine`) built from this bundle's ONNX graph, on the GPU it runs on.

    python -m export trt --model DIR --precision bf16 --profile image-448 --profile video-4x448 \
        --option opt_level=3 --option timing_cache=artifacts/trt.cache

- Strongly typed network (`NetworkDefinitionCreationFlag.STRONGLY_TYPED`, required in TensorRT 10.x, implied in
  11.x): the engine computes in the ONNX graph's own types, so `--precision` picks the ONNX graph that is exported
  (fp32, fp16 or bf16); there are no precision builder flags (TensorRT 11 removed them).
- The ONNX graph comes from the ONNX builder (`export.onnx_model.write_onnx`, dynamic axes covering the union of
  the profiles; written in the staging folder, not kept) or from `options["onnx"]`: an existing `.onnx` of this
  bundle (its manifest is checked: same precision, output layer and weights, profile covering every requested one).
  Either is linted with `export.trt_lint` (for the installed TensorRT version) before TensorRT parses it.
- One optimisation profile per requested ShapeProfile (min/opt/max of both inputs); the runtime picks the profile
  that covers each input. The manifest's `profile` is their union; `extra["tensorrt"]["profiles"]` lists each.
- Options: `opt_level` (builder optimisation level 0-5, default 3), `tf32` (default False: TF32 is off so that
  fp32 math stays fp32, for parity; TensorRT enables it by default), `workspace_mib` (workspace memory pool limit,
  default: TensorRT's, i.e. the device memory), `timing_cache` (file: loaded if it exists, written back after the
  build), `onnx` (see above), `lint` (default True).
- The engine always runs on CUDA (`manifest.device` is "cuda" whatever `--device` says).
- The manifest records the TensorRT version, the GPU and its compute capability (an engine runs only on that GPU
  model with that TensorRT version), and the I/O tensors as the engine reports them (name, mode, dtype - the
  positions input stays INT64 in TensorRT >= 10 - shape with -1 for dynamic axes, and each profile's min/opt/max).

`tensorrt` is imported lazily, so this module imports everywhere; `unavailable()` says in one line why a machine
cannot build (TensorRT missing - on PyPI the `tensorrt` wheels only download from NVIDIA's index - or no GPU).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models import weights_sha256
from models.checkpoint import file_sha256

from .artifact import io_specs
from .base import BuildRequest, BuildResult, ExportError
from .manifest import ManifestError, read_manifest, write_manifest
from .measure import BuildMeter
from .pipeline import BuildContext, Produced, run_build
from .profiles import AXES, ShapeProfile
from .trt_lint import lint_file
from .verify import verify_artifact
from .wrapper import INPUT_NAMES

if TYPE_CHECKING:
    import tensorrt as trt

DEFAULT_OPT_LEVEL = 3
MIN_BF16_CAPABILITY = (8, 0)  # bf16 kernels need Ampere or newer


def tensorrt_unavailable() -> str | None:
    """None if the TensorRT Python bindings import, else one line saying why not."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        return f"TensorRT is not installed: {exc} (pip install tensorrt, from NVIDIA's package index)"
    except Exception as exc:  # the bindings exist but libnvinfer does not load
        return f"TensorRT is not installed: import tensorrt failed ({type(exc).__name__}: {exc})"
    if not hasattr(trt, "Builder"):
        # Only the tensorrt-stubs wheel's `tensorrt/__init__.pyi` is there: Python imports it as an empty namespace.
        return "TensorRT is not installed: `import tensorrt` finds only type stubs (tensorrt-stubs), not the bindings"
    return None


def cuda_unavailable() -> str | None:
    if not torch.cuda.is_available():
        return (
            f"no CUDA GPU: torch {torch.__version__} sees no CUDA device, and a TensorRT engine is built on the GPU "
            "it runs on"
        )
    return None


def gpu_info(device: int | None = None) -> dict[str, Any]:
    index = torch.cuda.current_device() if device is None else device
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}", "index": index}


def _dims(shape: tuple[int, ...]) -> trt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


def covers(outer: ShapeProfile, inner: ShapeProfile) -> list[str]:
    """Reasons `outer` does not contain every shape of `inner` (empty if it does)."""
    reasons = []
    for axis in AXES:
        o, i = getattr(outer, axis), getattr(inner, axis)
        if i.min < o.min or i.max > o.max:
            reasons.append(f"{axis} [{i.min}, {i.max}] not inside [{o.min}, {o.max}]")
    return reasons


def union_profile(profiles: list[ShapeProfile]) -> ShapeProfile:
    from .onnx_model import union_profile as union

    return union(profiles)


def _options(request: BuildRequest) -> dict[str, Any]:
    opts = request.options
    level = int(opts.get("opt_level", DEFAULT_OPT_LEVEL))
    if not 0 <= level <= 5:
        raise ExportError(f"trt: opt_level must be 0..5, got {level}")
    workspace = opts.get("workspace_mib")
    return {
        "opt_level": level,
        "tf32": bool(opts.get("tf32", False)),
        "workspace_mib": int(workspace) if workspace is not None else None,
        "timing_cache": str(opts["timing_cache"]) if opts.get("timing_cache") else None,
        "onnx": str(opts["onnx"]) if opts.get("onnx") else None,
        "lint": bool(opts.get("lint", True)),
    }


def existing_onnx(path: Path, request: BuildRequest) -> dict[str, Any]:
    """Check a given `.onnx` against the request through its manifest; return the facts the engine manifest keeps."""
    try:
        manifest = read_manifest(path, verify=True)
    except ManifestError as exc:
        raise ExportError(f"trt: options['onnx']: {exc}") from None
    problems = []
    if manifest.kind != "onnx":
        problems.append(f"kind {manifest.kind!r}, not 'onnx'")
    if manifest.precision != request.precision:
        problems.append(
            f"precision {manifest.precision}, but {request.precision} was asked (a strongly typed engine computes in "
            "the graph's own types)"
        )
    if manifest.output_layer != request.output_layer:
        problems.append(f"output layer {manifest.output_layer}, not {request.output_layer}")
    if manifest.source.get("weights_sha256") != weights_sha256(request.model_dir):
        problems.append(f"its weights are not those of {request.model_dir}")
    onnx_profile = ShapeProfile.from_dict(manifest.profile)
    for profile in request.profiles:
        problems += [f"profile {profile.name!r}: {r}" for r in covers(onnx_profile, profile)]
    if problems:
        raise ExportError(f"trt: options['onnx'] {path} does not fit this build: {'; '.join(problems)}")
    return {"path": str(path), "sha256": manifest.sha256, "profile": onnx_profile.name, "built": False}


def _read_cache(path: str | None) -> bytes:
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    return b""


def _write_cache(path: str, data: bytes) -> None:
    """Atomic replace, so concurrent builds never read a half-written cache."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def engine_io(engine: trt.ICudaEngine) -> list[dict[str, Any]]:
    """Every I/O tensor as the engine reports it, with each optimisation profile's min/opt/max for inputs."""
    import tensorrt as trt

    io = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        entry: dict[str, Any] = {
            "name": name,
            "mode": "input" if mode == trt.TensorIOMode.INPUT else "output",
            "dtype": engine.get_tensor_dtype(name).name,
            "shape": list(dims_tuple(engine.get_tensor_shape(name))),
        }
        if mode == trt.TensorIOMode.INPUT:
            entry["profiles"] = [
                [list(dims_tuple(d)) for d in engine.get_tensor_profile_shape(name, k)]
                for k in range(engine.num_optimization_profiles)
            ]
        io.append(entry)
    return io


class TensorRTBuilder:
    kind = "trt"

    def unavailable(self, request: BuildRequest) -> str | None:
        missing = tensorrt_unavailable() or cuda_unavailable()
        if missing:
            return missing
        if request.precision == "bf16":
            capability = torch.cuda.get_device_capability()
            if capability < MIN_BF16_CAPABILITY:
                name = torch.cuda.get_device_name()
                return f"bf16 engines need compute capability >= 8.0; {name} is {capability[0]}.{capability[1]}"
        return None

    def build(self, request: BuildRequest) -> BuildResult:
        _options(request)  # refuse bad options before any work
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
            return path, existing_onnx(path, request)
        from .onnx_model import write_onnx

        union = union_profile(request.profiles)
        ctx.meter.stage("onnx", f"exporting the {request.precision} graph, dynamic over {union.name}")
        # The ONNX builder's writer with this build's meter (a second meter would reset the peak-RSS measurement).
        path = ctx.staged.parent / "onnx" / f"model-{request.precision}.onnx"
        path = write_onnx(request, path, profile=union, precision=request.precision, meter=ctx.meter).path
        return path, {"path": None, "sha256": file_sha256(path), "profile": union.name, "built": True}

    def _produce(self, ctx: BuildContext) -> Produced:
        import tensorrt as trt

        request, meter = ctx.request, ctx.meter
        opts = _options(request)
        onnx_path, onnx_facts = self._onnx(ctx, opts)
        if opts["lint"]:
            meter.stage("lint", "ops and dtypes against the TensorRT ONNX operator matrix")
            report = lint_file(onnx_path, trt_version=".".join(trt.__version__.split(".")[:2]))
            if report.errors:
                first = report.errors[0]
                raise ExportError(
                    f"trt: {onnx_path.name} uses what TensorRT {report.trt_version} cannot parse: {first.op or '-'} "
                    f"{first.tensor} {first.dtype} {first.reason} ({len(report.errors)} error(s); python -m "
                    f"export.trt_lint {onnx_path} for the table)"
                )
            onnx_facts["lint"] = report.summary()

        meter.stage("parse", f"strongly typed network from {onnx_path.name}")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            line = errors[0].strip().splitlines()[0] if errors else "no parser error recorded"
            raise ExportError(f"trt: TensorRT's ONNX parser rejected {onnx_path.name}: {line} ({len(errors)} error(s))")
        names = [network.get_input(i).name for i in range(network.num_inputs)]
        if sorted(names) != sorted(INPUT_NAMES):
            raise ExportError(f"trt: the network's inputs are {names}, expected {list(INPUT_NAMES)}")

        config = builder.create_builder_config()
        config.builder_optimization_level = opts["opt_level"]
        if opts["workspace_mib"] is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts["workspace_mib"] << 20)
        if opts["tf32"]:
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT; off keeps fp32 math fp32
        for profile in request.profiles:
            trt_profile = builder.create_optimization_profile()
            lo, opt, hi = (profile.shapes(which) for which in ("min", "opt", "max"))
            for name in INPUT_NAMES:
                trt_profile.set_shape(name, _dims(lo[name]), _dims(opt[name]), _dims(hi[name]))
            if config.add_optimization_profile(trt_profile) < 0:
                raise ExportError(f"trt: TensorRT refused optimisation profile {profile.name!r}: {profile.to_dict()}")

        cache, cache_loaded = self._timing_cache(config, opts["timing_cache"], meter)

        gpu = gpu_info()
        meter.stage(
            "build",
            f"TensorRT {trt.__version__} on {gpu['name']} (sm {gpu['compute_capability']}), "
            f"{len(request.profiles)} profile(s), opt level {opts['opt_level']}, tf32 {opts['tf32']}",
        )
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ExportError("trt: TensorRT could not build the engine (its log above says why)")
        with open(ctx.staged, "wb") as f:
            f.write(plan)
        if opts["timing_cache"]:
            _write_cache(opts["timing_cache"], bytes(memoryview(config.get_timing_cache().serialize())))
        del plan, cache, config, parser, network, builder  # host memory back before the verification loads the model

        meter.stage("inspect", "deserialize, read the I/O tensors")
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(ctx.staged.read_bytes())
        if engine is None:
            raise ExportError("trt: the engine just built does not deserialize (its log above says why)")
        io = engine_io(engine)
        del engine, runtime

        meter.stage("verify", "run each profile's min shape against eager on the GPU")
        verify = self._verify(ctx)
        extra = {
            "loader": "runtime.load(path) (runtime/backends/tensorrt.py); C++: runtime/cpp trt_runner",
            "tensorrt": {
                "version": trt.__version__,
                "strongly_typed": True,
                "opt_level": opts["opt_level"],
                "tf32": opts["tf32"],
                "workspace_mib": opts["workspace_mib"],
                "timing_cache": {"path": opts["timing_cache"], "loaded": cache_loaded},
                "profiles": [p.to_dict() for p in request.profiles],
            },
            "gpu": gpu,
            "engine_io": io,
            "onnx": onnx_facts,
        }
        return Produced(extra=extra, build={"verify": verify}, device="cuda", tools=("tensorrt",))

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

        from .trace import load_wrapper

        request = ctx.request
        wrapper = load_wrapper(request.model_dir, request.precision, request.output_layer, "cuda")
        engine = TensorRTEngine(ctx.staged, torch.device("cuda", torch.cuda.current_device()))
        try:
            return [
                verify_artifact(self.kind, engine.run, wrapper, profile, request.precision, "cuda")
                for profile in request.profiles
            ]
        finally:
            engine.close()
