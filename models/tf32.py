"""fp32 is fp32: the one rule for every float32 computation the bundle runs for a comparison.

cuDNN allows TF32 in convolutions by default (`torch.backends.cudnn.allow_tf32` is True) and a process may have
allowed it in matmuls (`torch.backends.cuda.matmul.allow_tf32`, `torch.set_float32_matmul_precision("high")`;
"medium" even lets oneDNN run fp32 matmuls in bf16 on the CPU). TF32 keeps 10 mantissa bits: ~1e-3 relative error,
a thousand times fp32's own. So export verification, the parity suite's references, artifact runs and eager
stand-ins, and the benchmarks' eager baselines all compute inside `exact_float32()`; benchmarks record
`tf32_state()` in their reports.

`exact_float32()` turns TF32 (and reduced-precision fp32 matmuls) off for CUDA matmuls, cuDNN and oneDNN, then
restores the caller's settings exactly, whichever API set them (the legacy `allow_tf32`/`set_float32_matmul_precision`
or torch >= 2.9's per-backend `fp32_precision`).

Thread safety: these are process-wide settings, not per-thread ones. While one thread is inside `exact_float32()`,
every other thread of the process also computes without TF32, and a thread that changes the flags meanwhile has its
change undone on exit. Nesting is fine (each level restores what it saw on entry).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

# torch >= 2.9 keeps the state per backend/operator in `fp32_precision` ("ieee" | "tf32" | "bf16" | "none" =
# inherit); the legacy flags are views of it. Parents first: restoring a parent may rewrite its children.
_NEW_API = (
    "backends",
    "backends.cuda.matmul",
    "backends.cudnn",
    "backends.cudnn.conv",
    "backends.cudnn.rnn",
    "backends.mkldnn",
    "backends.mkldnn.matmul",
    "backends.mkldnn.conv",
    "backends.mkldnn.rnn",
)


def _resolve(dotted: str) -> Any:
    obj: Any = torch
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _read(get: Any) -> Any:
    try:
        return get()
    except RuntimeError:  # torch >= 2.9 refuses to summarise flags set through a mix of the two APIs
        return None


def _snapshot() -> dict[str, Any]:
    state: dict[str, Any] = {
        "matmul_precision": _read(torch.get_float32_matmul_precision),
        "cuda.matmul.allow_tf32": _read(lambda: torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": _read(lambda: torch.backends.cudnn.allow_tf32),
    }
    for name in _NEW_API:
        obj = _resolve(name)
        if obj is not None and hasattr(obj, "fp32_precision"):
            state[name] = obj.fp32_precision
    return state


def _restore(state: dict[str, Any]) -> None:
    # The legacy setters first, where needed (they also reset torch's own legacy bookkeeping), then every
    # per-backend value that still differs (a state set through the new API, which the legacy flags cannot express).
    if state["matmul_precision"] is not None:
        torch.set_float32_matmul_precision(state["matmul_precision"])
    saved_matmul, saved_cudnn = state["cuda.matmul.allow_tf32"], state["cudnn.allow_tf32"]
    if saved_matmul is not None and _read(lambda: torch.backends.cuda.matmul.allow_tf32) != saved_matmul:
        torch.backends.cuda.matmul.allow_tf32 = saved_matmul
    if saved_cudnn is not None and _read(lambda: torch.backends.cudnn.allow_tf32) != saved_cudnn:
        torch.backends.cudnn.allow_tf32 = saved_cudnn
    for name in _NEW_API:
        if name in state and _resolve(name).fp32_precision != state[name]:
            _resolve(name).fp32_precision = state[name]


def tf32_state() -> dict[str, Any]:
    """The settings float32 work runs under now, as a report states them (None: torch refuses to summarise it)."""
    state = _snapshot()
    return {
        "cuda_matmul_allow_tf32": state["cuda.matmul.allow_tf32"],
        "cudnn_allow_tf32": state["cudnn.allow_tf32"],
        "float32_matmul_precision": state["matmul_precision"],
    }


def tf32_enabled() -> bool:
    """True when fp32 matmuls or convolutions on the GPU may use TF32 under the current settings."""
    state = tf32_state()
    return state["cuda_matmul_allow_tf32"] is not False or state["cudnn_allow_tf32"] is not False


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Run the block with IEEE float32 matmuls and convolutions (no TF32, no bf16 fp32-matmuls); restore after."""
    saved = _snapshot()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        _restore(saved)
