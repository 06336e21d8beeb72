"""kind "trt": a serialized TensorRT engine (`.engine` from `python -m export trt`), run on a CUDA GPU.

`TensorRTEngine` is the engine itself, usable without a manifest (the TensorRT builder verifies fresh engines with
it): it deserializes the plan, reads every optimisation profile's min/max shapes from the engine, and for each call
picks the first profile whose ranges contain both input shapes, sets the input shapes, binds the torch tensors'
device pointers (no copies: inputs are made contiguous, 256-byte aligned and of the engine's own dtype, which is a
no-op for validated input), allocates the output with torch from the shape TensorRT infers, and enqueues with
`execute_async_v3` on the runner's own CUDA stream (ordered after the caller's current stream, and the caller's
stream after it, so the returned tensor is safe to use on the caller's stream without a host sync).

Concurrency: TensorRT requires each execution context in concurrent use to have its own optimisation profile.
So there is one execution context per profile (created on first use, bound to its profile once), each behind its
own lock: calls on different profiles run concurrently, calls on the same profile take turns. `thread_safe = True`.

`TensorRTRunner` is the `runtime.base.Runner` for manifests of kind "trt": the base validates inputs against the
manifest (the union of the engine's profiles); the engine then refuses, in one `InputError` line, a shape that
falls between profiles. Loading fails with one `LoadError` line where TensorRT or a GPU is missing, or where the
engine was built with another TensorRT version or on another GPU model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from export.wrapper import INPUT_NAMES, OUTPUT_NAMES
from models.errors import InputError

from ..base import LoadError, Runner

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


def require_tensorrt() -> None:
    """LoadError (one line) when the TensorRT bindings or a CUDA GPU are missing."""
    from export.trt_engine import cuda_unavailable, tensorrt_unavailable

    reason = tensorrt_unavailable() or cuda_unavailable()
    if reason:
        raise LoadError(reason)


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

    def __init__(self, path: str | Path, device: torch.device) -> None:
        require_tensorrt()
        import tensorrt as trt

        if device.type != "cuda":
            raise LoadError(f"{path}: a TensorRT engine runs on a CUDA device, not {device}")
        self.path = Path(path)
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(device):
            self._runtime: trt.Runtime = trt.Runtime(self._logger)
            engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if engine is None:
                raise LoadError(
                    f"{self.path}: TensorRT {trt.__version__} cannot deserialize this engine (built with another "
                    "TensorRT version or for another GPU? its log above says why)"
                )
            self.engine: trt.ICudaEngine = engine
            self.stream = torch.cuda.Stream(device)
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
        if sorted(self.inputs) != sorted(INPUT_NAMES) or not self.outputs:
            raise LoadError(f"{self.path}: engine inputs {self.inputs}, outputs {self.outputs}; expected {INPUT_NAMES}")
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

    def run(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        feeds = {
            INPUT_NAMES[0]: self._bind(INPUT_NAMES[0], pixel_values),
            INPUT_NAMES[1]: self._bind(INPUT_NAMES[1], patch_positions),
        }
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


class TensorRTRunner(Runner):
    kind = "trt"
    thread_safe = True  # one execution context per optimisation profile, each behind its own lock

    def _load(self) -> None:
        require_tensorrt()
        import tensorrt as trt

        built = str(self.manifest.extra.get("tensorrt", {}).get("version", ""))
        if built and built != trt.__version__:
            raise LoadError(
                f"{self.path}: engine built with TensorRT {built}, this is TensorRT {trt.__version__}; an engine runs "
                "only with the version that built it: rebuild it here (python -m export trt)"
            )
        if self.device.type != "cuda":
            raise LoadError(f"{self.path}: a TensorRT engine runs on a CUDA GPU, not {self.device}")
        gpu = self.manifest.extra.get("gpu", {})
        major, minor = torch.cuda.get_device_capability(self.device)
        if gpu.get("compute_capability") and gpu["compute_capability"] != f"{major}.{minor}":
            raise LoadError(
                f"{self.path}: engine built on {gpu.get('name')} (compute capability {gpu['compute_capability']}), "
                f"this GPU is {torch.cuda.get_device_name(self.device)} ({major}.{minor}): rebuild it here"
            )
        self._engine = TensorRTEngine(self.path, self.device)
        self.provider = f"tensorrt-{trt.__version__}"

    def _run(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        return self._engine.run(pixel_values, patch_positions)

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()
