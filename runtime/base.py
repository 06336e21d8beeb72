"""The one small interface every artifact kind implements: `Runner`.

A runner is what `runtime.load(path)` returns. It is called as

    last_hidden_state = runner(pixel_values, patch_positions)

with torch tensors (any device) or numpy arrays, and returns a torch tensor on `runner.device`.

Contract for backends (one module per kind in `runtime/backends/`, named by the kind's `runner` in
contract/backends.py, from which `runtime.loader.BACKENDS` is derived):

- Subclass `Runner`, set the class attribute `kind` (the manifest kind: one of `contract.backends.KINDS`).
- Optionally override the classmethod `default_device(manifest)`: the device used when the caller passes none
  (default: `manifest.device`; ONNX picks CUDA when onnxruntime's CUDA provider and a GPU are present).
- Implement `_load(self) -> None`. It is called once, at the end of `Runner.__init__`, after `path`, `manifest`,
  `profile`, `precision`, `dtype` and `device` are set and the artifact's sha256 has been checked. Load the artifact
  there; raise `LoadError` (one line: what is wrong and what to do) if it cannot run on `self.device`. Set
  `self.provider` to a short name of what executes the artifact (e.g. "torch", "aoti", "CPUExecutionProvider",
  "CUDAExecutionProvider", "tensorrt").
- Implement `_run(self, pixel_values, patch_positions) -> torch.Tensor`. It only ever receives input that passed
  `runtime.validation.check_inputs` against the manifest: pixel_values is a contiguous (B, 3, T, H, W) tensor of
  exactly `self.dtype`, finite, with H and W positive multiples of the patch size and (B, T, H, W) inside
  `self.profile`; patch_positions is a contiguous (B, L, 3) int64 tensor, L = T*(H/p)*(W/p), all values in
  [0, 2**24) (so an int32 cast is lossless). Both are on `self.device`. Return last_hidden_state (B, L, hidden)
  as a torch tensor on `self.device`; it must not alias memory the backend reuses on the next call (return a fresh
  tensor or a clone).
- Thread safety: `__call__` may be entered from several threads at once. If `_run` is safe to call concurrently,
  set the class attribute `thread_safe = True`; otherwise leave it False and `__call__` serialises `_run` with a
  per-runner lock. Per-thread state (e.g. ONNX Runtime I/O bindings) may be kept in a `threading.local`.
- Optionally override `close()` to free backend resources (the runner is also a context manager).

Nothing else in the runtime knows a backend's details: what differs stays in its module.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np
import torch

from contract.dtypes import DTYPES
from contract.errors import InputError
from contract.manifest import Manifest
from contract.packing import pack, unpack
from contract.profiles import PackedProfile, Profile, profile_from_dict

from .packed import COSTS, FLOPS_ONLY, Widths, check_call, check_items, filler, plan_calls
from .validation import check_inputs


class LoadError(RuntimeError):
    """An artifact cannot be loaded or run here (wrong device, missing backend package, unreadable file, ...)."""


class NotRunnableHere(LoadError):
    """This machine lacks what the artifact needs, and that is no defect of the artifact or of the install: no CUDA
    device, a backend package this machine does not have (OpenVINO, TensorRT, onnxruntime's CUDA provider in a
    CPU-only build), a backend with no kernel for the artifact's precision, a GPU the engine does not target. The
    parity suite and the GPU tests report these as skipped; every other LoadError (a CUDA provider that is installed
    but fails, a file the backend cannot parse) is a failure."""


def resolve_device(device: str | torch.device | None, manifest: Manifest) -> torch.device:
    """The device a runner runs on: `device` if given, else the artifact's own (`manifest.device`).

    A bare "cuda" becomes "cuda:0" so that every backend sees an explicit index. Raises LoadError if the device is
    CUDA and no CUDA device is visible to torch.
    """
    dev = torch.device(device if device is not None else manifest.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NotRunnableHere(
                f"{manifest.path}: needs device {dev}, but torch sees no CUDA device "
                f"(torch {torch.__version__}); load it on a GPU machine"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type != "cpu":
        raise LoadError(f"{manifest.path}: unsupported device {dev} (use 'cpu' or 'cuda[:N]')")
    return dev


class Runner(abc.ABC):
    """Callable artifact: `runner(pixel_values, patch_positions) -> last_hidden_state` (see module docstring)."""

    kind: ClassVar[str] = ""
    thread_safe: ClassVar[bool] = False

    path: Path
    manifest: Manifest
    profile: Profile
    precision: str
    dtype: torch.dtype
    device: torch.device
    provider: str

    def __init__(self, path: str | os.PathLike[str], manifest: Manifest, device: str | torch.device | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self.profile = profile_from_dict(manifest.profile)
        self.precision = manifest.precision
        if manifest.precision not in DTYPES:
            raise LoadError(f"{self.path}: unknown precision {manifest.precision!r} (expected one of {sorted(DTYPES)})")
        self.dtype = DTYPES[manifest.precision]
        self.device = resolve_device(device if device is not None else self.default_device(manifest), manifest)
        self.provider = self.kind
        self._lock = threading.Lock()
        self._load()

    # -- backend hooks -------------------------------------------------------------------------------------------
    @classmethod
    def default_device(cls, manifest: Manifest) -> str:
        """The device to run on when `runtime.load(..., device=None)`: the artifact's own by default."""
        return manifest.device

    @abc.abstractmethod
    def _load(self) -> None:
        """Load the artifact at `self.path` for `self.device`; set `self.provider`."""

    @abc.abstractmethod
    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Validated inputs on `self.device`, in the manifest's input order -> last_hidden_state: (B, 3, T, H, W)
        `self.dtype` and (B, L, 3) int64 -> (B, L, hidden); a packed artifact's three (contract/packing.py) ->
        (N, hidden)."""

    # -- public API ----------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int | None:
        """The last dimension of last_hidden_state, from the manifest (None if the manifest leaves it symbolic)."""
        for out in self.manifest.outputs:
            shape = out.get("shape") or []
            if shape and isinstance(shape[-1], int):
                return int(shape[-1])
        return None

    @property
    def packed(self) -> bool:
        """A packed artifact (a packed profile: `run_packed`), not a batched one (`runner(pixel_values, ...)`)."""
        return bool(self.profile.packed)

    @property
    def packed_flat(self) -> bool:
        """A packed artifact's inputs are flat (its manifest's patches are 1-D: ONNX graphs), else rows."""
        return len(self.manifest.inputs[0].get("shape") or []) == 1

    def output_shape(self, inputs: tuple[torch.Tensor, ...]) -> tuple[int, ...]:
        """last_hidden_state's shape for these (validated) inputs: (B, L, hidden), or (N, hidden) when packed."""
        hidden = self.hidden_size
        if hidden is None:
            raise LoadError(f"{self.path}: its manifest does not give the hidden size")
        if self.packed:
            return (inputs[1].numel() // 3, hidden)
        return (*inputs[1].shape[:2], hidden)

    def prepare(self, pixel_values: Any, patch_positions: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate both inputs against the manifest and return them as the backend receives them."""
        if isinstance(self.profile, PackedProfile):
            raise InputError(
                f"{self.path.name} is a packed artifact (profile {self.profile.name!r}): call run_packed(items), "
                "a list of (pixel_values, patch_positions) pairs"
            )
        pv, pos = check_inputs(pixel_values, patch_positions, self.profile, self.dtype)
        pv = pv.to(self.device, non_blocking=False).contiguous()
        pos = pos.to(self.device, non_blocking=False).contiguous()
        return pv, pos

    def __call__(
        self, pixel_values: torch.Tensor | np.ndarray, patch_positions: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        pv, pos = self.prepare(pixel_values, patch_positions)
        return self.run_prepared(pv, pos)

    def run_prepared(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Run inputs that `prepare()` (or a packed plan) returned, without validating them again (what benchmarks
        time: the compute alone, like an eager model call). Anything else must go through `runner(...)` or
        `run_packed`."""
        with torch.no_grad():
            if self.thread_safe:
                return self._run(*inputs)
            with self._lock:
                return self._run(*inputs)

    # -- packed calls (contract/packing.py, runtime/packed.py) ---------------------------------------------------
    def _packed_profile(self) -> PackedProfile:
        if not isinstance(self.profile, PackedProfile):
            raise InputError(
                f"{self.path.name} is a batched artifact (profile {self.profile.name!r}): packed calls need one "
                f"exported with a packed profile (e.g. `make export-{self.kind} PROFILE=packed-any`)"
            )
        return self.profile

    def plan_packed(self, items: Sequence[tuple[Any, Any]]) -> list[tuple[list[int], tuple[torch.Tensor, ...]]]:
        """Every item checked (refused by its index, before anything runs), then the calls to make: (item indices,
        the call's inputs on this device), within the profile's budget (runtime/packed.py). A call below the
        profile's minimum tokens carries a filler item after the call's items: unpack with `items=len(indices)`."""
        profile = self._packed_profile()
        checked = check_items(items, profile, self.dtype)
        widths = Widths.of(self.manifest.source.get("config") or {}, self.manifest.extra.get("layers_run"))
        attention = str(self.manifest.extra.get("packed_attention", "mask"))
        costs = COSTS.get(self.device.type, FLOPS_ONLY)
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        calls = plan_calls([int(pos.shape[1]) for _, pos in checked], profile, attention, widths, costs, itemsize)
        plans = []
        for call in calls:
            members = [checked[i] for i in call]
            short = profile.call_tokens.min - sum(int(pos.shape[1]) for _, pos in members)
            if short > 0:  # topped up to the profile's minimum a call by a filler item, whose output is dropped
                members.append(filler(short, profile.patch, self.dtype))
            inputs = pack(members, profile.patch, flat=self.packed_flat)
            plans.append((call, tuple(t.to(self.device).contiguous() for t in inputs)))
        return plans

    def run_packed(self, items: Sequence[tuple[Any, Any]]) -> list[torch.Tensor]:
        """Items of different shapes, each (pixel_values (1, 3, T, H, W), patch_positions (1, L, 3)) as for a single
        call, run packed (as few calls as the profile's budget allows) -> one (1, L, hidden) tensor per item, in
        order."""
        outputs: list[torch.Tensor | None] = [None] * len(items)
        for call, inputs in self.plan_packed(items):
            for index, out in zip(call, unpack(self.run_prepared(*inputs), inputs[2], len(call)), strict=True):
                outputs[index] = out
        return [o for o in outputs if o is not None]

    def run_packed_call(self, pixel_patches: Any, patch_positions: Any, cu_seqlens: Any) -> torch.Tensor:
        """One packed call as given (the artifact's own layout: contract/packing.py), checked whole: layout, dtypes,
        the offsets and the profile's budget -> (N, hidden)."""
        profile = self._packed_profile()
        inputs = check_call(pixel_patches, patch_positions, cu_seqlens, profile, self.dtype, self.packed_flat)
        return self.run_prepared(*(t.to(self.device).contiguous() for t in inputs))

    def computes_tf32(self) -> bool:
        """Whether this runner's fp32 matmuls may use TF32 now. Torch kinds follow the process's settings
        (`models.tf32`: on a CUDA device, when torch's TF32 flags allow it); backends that fix it themselves say so
        (onnxruntime's CUDA sessions run use_tf32=0; a TensorRT engine's TF32 is decided at build time). What a
        benchmark divides by the TF32 or the fp32 peak (MFU)."""
        if self.device.type != "cuda" or self.dtype != torch.float32:
            return False
        return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)

    def close(self) -> None:  # noqa: B027 (an optional hook: most backends free everything on garbage collection)
        """Free backend resources (optional for backends)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={str(self.path)!r}, kind={self.kind!r}, precision={self.precision!r}, "
            f"device={str(self.device)!r}, provider={self.provider!r}, profile={self.profile.name!r})"
        )
