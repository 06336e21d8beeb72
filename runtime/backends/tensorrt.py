"""kinds "trt" and "trt-rtx": a serialized TensorRT / TensorRT-RTX engine (`.engine`), run on a CUDA GPU.

The two share this runner: TensorRT-RTX's API is TensorRT's (same classes and calls), so the only differences are
which Python module is imported and which GPUs an engine runs on. They are the `TensorRTAPI` values `TRT` and
`TRT_RTX` below, which the builder (`export/trt_engine.py`) injects too; this module imports nothing from `export`.

`TensorRTEngine` is the engine itself, usable without a manifest (the builder verifies fresh engines with it): it
deserializes the plan, reads every optimisation profile's min/max shapes from the engine, and for each call picks
the first profile whose ranges contain both input shapes, sets the input shapes, binds the torch tensors' device
pointers (no copies: inputs are made contiguous, 256-byte aligned and of the engine's own dtype, which is a no-op
for validated input), allocates the output with torch from the shape TensorRT infers, and enqueues with
`execute_async_v3` on the runner's own CUDA stream (ordered after the caller's current stream, and the caller's
stream after it, so the returned tensor is safe to use on the caller's stream without a host sync).

Concurrency: an execution context's memory is in use from `execute_async_v3` until its work on the stream ends, and
contexts in concurrent use need distinct optimisation profiles. So there is one execution context per profile
(created on first use, bound to its profile once), each behind its own lock, and every call enqueues on the one
stream of the engine: two calls on one profile take turns on the lock and their work runs in stream order, so the
second never overwrites context memory the first still uses. `thread_safe = True`.

`TensorRTRunner` is the `runtime.base.Runner` for manifests of kind "trt" (`TensorRTRTXRunner`: "trt-rtx"). Before
anything is read it refuses, in one `LoadError` line, what cannot run here: the API module missing, no CUDA GPU, a
GPU whose compute capability the engine was not built for (TensorRT: the build GPU's; TensorRT-RTX: the manifest's
targets, by default 8.6/8.9/12.0), or an engine of another TensorRT(-RTX) version.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from contract.errors import InputError
from contract.io import INPUT_NAMES, OUTPUT_NAMES, PACKED_INPUT_NAMES
from contract.manifest import Manifest

from ..base import LoadError, NotRunnableHere, Runner

if TYPE_CHECKING:
    import tensorrt as trt

ALIGNMENT = 256  # bytes: what IExecutionContext.set_tensor_address requires of every I/O pointer
# TensorRT DataType name -> torch dtype (the I/O types this engine can have).
TORCH_DTYPES: dict[str, torch.dtype] = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT64": torch.int64,
    "INT32": torch.int32,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class TensorRTAPI:
    """One TensorRT flavour: what differs between TensorRT and TensorRT-RTX for this bundle (nothing else does).

    kind: the artifact kind; label: its name in messages; modules: imported in order, the last one is the API
    (`tensorrt`, or `tensorrt_rtx_libs` which loads the libraries, then `tensorrt_rtx_bindings`); install: how to
    get it; builds_without_gpu: TensorRT-RTX compiles ahead of time on any machine, TensorRT builds on the GPU it
    runs on; explicit_strong_typing: TensorRT 10 needs the STRONGLY_TYPED network flag (11 ignores it), TensorRT-RTX
    networks are always strongly typed and take `create_network(0)`; targets: compute capabilities an engine can be
    built for (TensorRT-RTX's `ComputeCapability`), default_targets: those it targets when none are asked for
    (NVIDIA's TensorRT-RTX support matrix: 8.6, 8.9, 12.0; Turing 7.5 only when asked for).
    """

    kind: str
    label: str
    modules: tuple[str, ...]
    install: str
    builds_without_gpu: bool
    explicit_strong_typing: bool
    targets: tuple[str, ...] = ()
    default_targets: tuple[str, ...] = ()
    runtime_cache: bool = False  # TensorRT-RTX: IRuntimeConfig/IRuntimeCache keep the kernels it compiles at load
    distributions: tuple[str, ...] = ()  # pip distributions whose versions the manifest records (those installed)

    def module(self) -> ModuleType:
        """The API module (ImportError/OSError when it is not installed or its libraries do not load)."""
        module = None
        for name in self.modules:
            module = importlib.import_module(name)
        assert module is not None
        return module

    def unavailable(self) -> str | None:
        """None if the Python API imports with its native libraries, else one line saying why not."""
        try:
            module = self.module()
        except ImportError as exc:
            return f"{self.label} is not installed: {exc} ({self.install})"
        except Exception as exc:  # the bindings exist but the native library does not load
            return f"{self.label} is not installed: import {self.modules[-1]} failed ({type(exc).__name__}: {exc})"
        if not hasattr(module, "Builder"):
            # Only the tensorrt-stubs wheel's `tensorrt/__init__.pyi` is there: Python imports it as an empty namespace.
            return (
                f"{self.label} is not installed: `import {self.modules[-1]}` finds only type stubs, not the bindings "
                f"({self.install})"
            )
        return None

    def version(self) -> str:
        return str(self.module().__version__)


TRT = TensorRTAPI(
    kind="trt",
    label="TensorRT",
    modules=("tensorrt",),
    install="TensorRT 10.x/11.x: pip install tensorrt from NVIDIA's package index; where it cannot be installed, "
    "`make export-trt-rtx` builds a TensorRT-RTX engine on any machine",
    builds_without_gpu=False,
    explicit_strong_typing=True,
    distributions=("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
)
TRT_RTX = TensorRTAPI(
    kind="trt-rtx",
    label="TensorRT-RTX",
    modules=("tensorrt_rtx_libs", "tensorrt_rtx_bindings"),
    install="pip install --no-deps tensorrt-rtx-cu12-libs tensorrt-rtx-cu12-bindings (`make venv` does)",
    builds_without_gpu=True,
    explicit_strong_typing=False,
    targets=("7.5", "8.0", "8.6", "8.9", "12.0", "12.1"),
    default_targets=("8.6", "8.9", "12.0"),
    runtime_cache=True,
    distributions=("tensorrt-rtx-cu12-bindings", "tensorrt-rtx-cu12-libs"),
)
# TensorRT-RTX compiles its kernels when an engine is loaded; with this variable set to a file, the runner loads the
# compiled kernels from it (when they fit this GPU, driver and version) and writes them back on close().
RUNTIME_CACHE_ENV = "ONEVISION_TRT_RTX_RUNTIME_CACHE"
APIS = {api.kind: api for api in (TRT, TRT_RTX)}


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` atomically (a concurrent reader never sees half a cache file)."""
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


def cuda_unavailable(what: str = "a TensorRT engine") -> str | None:
    if not torch.cuda.is_available():
        return f"no CUDA GPU: torch {torch.__version__} sees no CUDA device, and {what} runs on one"
    return None


def gpu_info(device: int | None = None) -> dict[str, str | int]:
    index = torch.cuda.current_device() if device is None else device
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}", "index": index}


def runnable_here(api: TensorRTAPI, manifest: Manifest, device: torch.device) -> str | None:
    """None if an engine with this manifest can run on `device` here, else one line naming what this machine lacks
    (NotRunnableHere: not a defect). Checked in the order a user fixes them: the API module, a CUDA GPU, its compute
    capability. The version is `version_mismatch`'s."""
    missing = api.unavailable()
    if missing:
        return missing
    if device.type != "cuda":
        return f"a {api.label} engine runs on a CUDA GPU, not {device}"
    extra = manifest.extra.get("tensorrt", {})
    if not torch.cuda.is_available():
        if api.builds_without_gpu:
            targets = "/".join(extra.get("targets") or api.default_targets)
            return (
                f"no CUDA GPU: torch {torch.__version__} sees no CUDA device; this {api.label} engine runs on a GPU "
                f"of compute capability {targets}"
            )
        return cuda_unavailable(f"a {api.label} engine")
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    here, name = f"{major}.{minor}", torch.cuda.get_device_name(index)
    if api.builds_without_gpu:
        built_for = [str(t) for t in extra.get("targets") or api.default_targets]
        if here not in built_for:
            return (
                f"{name} has compute capability {here}; this {api.label} engine was built for {'/'.join(built_for)} "
                f"(rebuild with --option targets={here} if {api.label} supports it)"
            )
    else:
        gpu = manifest.extra.get("gpu", {})
        built = gpu.get("compute_capability")
        if built and built != here:
            return (
                f"engine built on {gpu.get('name')} (compute capability {built}), this GPU is {name} ({here}): "
                f"rebuild it here"
            )
    return None


def version_mismatch(api: TensorRTAPI, manifest: Manifest) -> str | None:
    """Why this engine cannot run with the installed API version (an engine runs only with the version that built
    it), or None."""
    built_version = str(manifest.extra.get("tensorrt", {}).get("version", ""))
    if built_version and built_version != api.version():
        return (
            f"engine built with {api.label} {built_version}, this is {api.label} {api.version()}; an engine runs "
            f"only with the version that built it: rebuild it here (python -m export {api.kind})"
        )
    return None


def _tuple(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


@dataclass
class _Slot:
    """One optimisation profile's execution context (created on first use) and the lock that serialises it."""

    index: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    context: trt.IExecutionContext | None = None


class TensorRTEngine:
    """A deserialized engine on one CUDA device: `engine.run(pixel_values, patch_positions) -> last_hidden_state`."""

    def __init__(
        self, path: str | Path, device: torch.device, api: TensorRTAPI = TRT, runtime_cache: str | None = None
    ) -> None:
        reason = api.unavailable() or cuda_unavailable(f"a {api.label} engine")
        if reason:
            raise NotRunnableHere(f"{path}: {reason}")
        if TYPE_CHECKING:  # TensorRT-RTX mirrors TensorRT's API: both are checked against tensorrt-stubs
            import tensorrt as trt
        else:
            trt = api.module()

        if device.type != "cuda":
            raise LoadError(f"{path}: a {api.label} engine runs on a CUDA device, not {device}")
        self.api = api
        self.path = Path(path)
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(device):
            self._runtime: trt.Runtime = trt.Runtime(self._logger)
            engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if engine is None:
                raise LoadError(
                    f"{self.path}: {api.label} {trt.__version__} cannot deserialize this engine (built with another "
                    "TensorRT version or for another GPU? its log above says why)"
                )
            self.engine: trt.ICudaEngine = engine
            self.stream = torch.cuda.Stream(device)
            self._runtime_config: Any = None
            self.runtime_cache = {"path": runtime_cache, "loaded": False}
            if runtime_cache:
                self._open_runtime_cache(runtime_cache)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.dtypes: dict[str, torch.dtype] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
            kind = engine.get_tensor_dtype(name).name
            if kind not in TORCH_DTYPES:
                raise LoadError(f"{self.path}: I/O tensor {name!r} has TensorRT type {kind}, which torch cannot hold")
            self.dtypes[name] = TORCH_DTYPES[kind]
        if sorted(self.inputs) not in (sorted(INPUT_NAMES), sorted(PACKED_INPUT_NAMES)) or not self.outputs:
            raise LoadError(
                f"{self.path}: engine inputs {self.inputs}, outputs {self.outputs}; expected {INPUT_NAMES} or the "
                f"packed {PACKED_INPUT_NAMES}"
            )
        self.output = OUTPUT_NAMES[0] if OUTPUT_NAMES[0] in self.outputs else self.outputs[0]
        # profile -> input name -> (min shape, max shape), as the engine reports them
        self.profiles: list[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = []
        for k in range(engine.num_optimization_profiles):
            ranges = {}
            for name in self.inputs:
                lo, _opt, hi = engine.get_tensor_profile_shape(name, k)
                ranges[name] = (_tuple(lo), _tuple(hi))
            self.profiles.append(ranges)
        self._slots = [_Slot(k) for k in range(len(self.profiles))]

    def _open_runtime_cache(self, path: str) -> None:
        """TensorRT-RTX only (IRuntimeConfig/IRuntimeCache are not in TensorRT 10's API, hence Any): one cache for
        every context, filled from `path` when its kernels fit this GPU, driver and version."""
        if not self.api.runtime_cache:
            raise LoadError(f"{self.path}: a runtime cache is a TensorRT-RTX feature, not {self.api.label}'s")
        rtx_engine: Any = self.engine
        config = rtx_engine.create_runtime_config()
        cache = config.create_runtime_cache()
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        self.runtime_cache["loaded"] = bool(data) and bool(cache.deserialize(data))
        if not config.set_runtime_cache(cache):
            raise LoadError(f"{self.path}: {self.api.label} refused the runtime cache {path}")
        self._runtime_config, self._cache = config, cache

    def select_profile(self, shapes: dict[str, tuple[int, ...]]) -> int:
        """The first optimisation profile whose min/max contain every input shape; InputError if none does."""
        for k, ranges in enumerate(self.profiles):
            if all(
                len(shapes[n]) == len(ranges[n][0])
                and all(lo <= d <= hi for d, lo, hi in zip(shapes[n], ranges[n][0], ranges[n][1], strict=True))
                for n in self.inputs
            ):
                return k
        listed = "; ".join(
            f"profile {k}: " + ", ".join(f"{n} {list(r[n][0])}..{list(r[n][1])}" for n in self.inputs)
            for k, r in enumerate(self.profiles)
        )
        got = ", ".join(f"{n} {list(shapes[n])}" for n in self.inputs)
        raise InputError(f"no optimisation profile of {self.path.name} covers {got} ({listed})")

    def _context(self, slot: _Slot) -> trt.IExecutionContext:
        if slot.context is None:
            if self._runtime_config is not None:  # TensorRT-RTX with a runtime cache (not in tensorrt-stubs: Any)
                rtx_engine: Any = self.engine
                context = rtx_engine.create_execution_context(self._runtime_config)
            else:
                context = self.engine.create_execution_context()
            if context is None:
                raise RuntimeError(f"{self.path}: TensorRT could not create an execution context (out of GPU memory?)")
            if slot.index != 0 and not context.set_optimization_profile_async(slot.index, self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT refused optimisation profile {slot.index}")
            slot.context = context
        return slot.context

    def _bind(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor TensorRT reads for input `name`: on the device, the engine's dtype, contiguous, aligned."""
        t = tensor.to(device=self.device, dtype=self.dtypes[name]).contiguous()
        if t.data_ptr() % ALIGNMENT:
            t = t.clone()  # a view at an odd offset of its storage (fresh torch allocations are aligned)
        return t

    def run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input name -> tensor (every input of the engine) -> its output."""
        feeds = {name: self._bind(name, inputs[name]) for name in self.inputs}
        slot = self._slots[self.select_profile({n: tuple(t.shape) for n, t in feeds.items()})]
        caller = torch.cuda.current_stream(self.device)
        with slot.lock, torch.cuda.device(self.device):
            context = self._context(slot)
            for name, tensor in feeds.items():
                if not context.set_input_shape(name, tuple(tensor.shape)):
                    raise InputError(f"TensorRT refused shape {list(tensor.shape)} for input {name!r}")
                context.set_tensor_address(name, tensor.data_ptr())
            shape = _tuple(context.get_tensor_shape(self.output))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"{self.path}: TensorRT could not infer the output shape ({list(shape)})")
            # Allocated on the caller's stream: its memory is then ordered with the caller's later use and free.
            out = torch.empty(shape, dtype=self.dtypes[self.output], device=self.device)
            context.set_tensor_address(self.output, out.data_ptr())
            self.stream.wait_stream(caller)  # inputs (and the output's memory) are ready
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT execute_async_v3 failed (its log above says why)")
            for tensor in feeds.values():
                tensor.record_stream(self.stream)  # not reused by the allocator before the engine has read it
            caller.wait_stream(self.stream)
        return out

    def close(self) -> None:
        self.stream.synchronize()
        for slot in self._slots:
            with slot.lock:
                slot.context = None
        if self._runtime_config is not None and self.runtime_cache["path"]:
            write_atomic(str(self.runtime_cache["path"]), bytes(memoryview(self._cache.serialize())))


class TensorRTRunner(Runner):
    kind: ClassVar[str] = "trt"
    api: ClassVar[TensorRTAPI] = TRT
    thread_safe = True  # one execution context per optimisation profile, each behind its own lock, one stream

    def __init__(self, path: str | os.PathLike[str], manifest: Manifest, device: str | torch.device | None = None):
        # Refuse before Runner resolves the device, so the line names what is missing for this engine.
        wanted = torch.device(device if device is not None else manifest.device)
        reason = runnable_here(self.api, manifest, wanted)
        if reason:
            raise NotRunnableHere(f"{path}: {reason}")
        mismatch = version_mismatch(self.api, manifest)
        if mismatch:
            raise LoadError(f"{path}: {mismatch}")
        super().__init__(path, manifest, device)

    def _load(self) -> None:
        cache = os.environ.get(RUNTIME_CACHE_ENV) if self.api.runtime_cache else None
        self._engine = TensorRTEngine(self.path, self.device, self.api, runtime_cache=cache or None)
        self.provider = f"{self.api.kind}-{self.api.version()}"

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = [str(i["name"]) for i in self.manifest.inputs]
        return self._engine.run(dict(zip(names, inputs, strict=True)))

    def computes_tf32(self) -> bool:
        """Decided when the engine was built (option tf32, recorded in the manifest), not by torch's flags."""
        return self.dtype == torch.float32 and bool(self.manifest.extra.get("tensorrt", {}).get("tf32", False))

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()


class TensorRTRTXRunner(TensorRTRunner):
    """The same runner for TensorRT-RTX engines (compiled ahead of time for the manifest's compute capabilities)."""

    kind: ClassVar[str] = "trt-rtx"
    api: ClassVar[TensorRTAPI] = TRT_RTX
