"""Input checks every runner applies before a backend sees its input (`Runner.__call__` -> `check_inputs`).

The rules (each violation raises one `contract.errors.InputError` naming the input, the expected and the actual value):

- Types: torch tensors (any device) or numpy arrays. Anything else is refused.
- pixel_values has rank 5 (B, 3, T, H, W). Rank 4 (B, 3, H, W) is accepted as a batch of images and becomes
  T = 1 (unsqueezed at dim 2), like the model's own forward; any other rank is refused.
- patch_positions has shape (B, L, 3) holding [t, h, w] per token.
- Neither tensor may be empty (no zero-sized dimension).
- 3 channels; H and W positive multiples of the patch size (14).
- pixel_values dtype equals the artifact precision (fp32 -> float32, fp16 -> float16, bf16 -> bfloat16). The runtime
  never casts pixel values silently: float64 (numpy's default!), integer or other float types are refused with the
  cast to make. One exception, because numpy has no bfloat16: a numpy float32 array given to a bf16 artifact is
  rounded to bfloat16 (round-to-nearest-even, torch's `.to(torch.bfloat16)`); the C++ runner's .npy files follow
  the same convention.
- patch_positions is an integer tensor (bool and floating point are refused) converted losslessly to int64:
  int8/16/32, uint8/16/32 always convert; uint64 only if every value fits in int64.
- B equal in both inputs; L = T * (H/14) * (W/14).
- (B, T, H, W) inside the artifact's ShapeProfile (`ShapeProfile.violations`, every violated axis in one message).
- pixel_values finite (no NaN or Inf); positions in [0, 2**24): RoPE turns positions into float32, which holds
  integers exactly only up to 2**24 (so larger values would silently alias; the bound also keeps them int32-safe).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from contract.dtypes import DTYPE_NAMES
from contract.errors import InputError
from contract.io import CHANNELS

MAX_POSITION = 1 << 24  # exclusive bound: float32 represents every integer below it exactly
_INT_DTYPES = (
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
)
_NP_PIXEL_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}
_CAST_HINT = {torch.float32: ".float()", torch.float16: ".half()", torch.bfloat16: ".bfloat16()"}


def _shape(x: torch.Tensor | np.ndarray) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _pixels_to_torch(x: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if not isinstance(x, np.ndarray):
        raise InputError(f"pixel_values: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if dtype == torch.bfloat16 and x.dtype == np.float32:
        # numpy has no bfloat16: float32 arrays are the documented way to feed a bf16 artifact from numpy.
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16)
    if x.dtype not in _NP_PIXEL_DTYPES:
        expected = "float32 (rounded to bfloat16)" if dtype == torch.bfloat16 else _dtype_name(dtype)
        raise InputError(
            f"pixel_values: expected dtype {expected} for this {DTYPE_NAMES.get(dtype, dtype)} artifact, "
            f"got numpy {x.dtype}; cast it first (e.g. x.astype(np.float32)), the runtime never casts silently"
        )
    return torch.from_numpy(np.array(x, copy=True, order="C"))


def _positions_to_torch(x: Any) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iu":
            raise InputError(
                f"patch_positions: expected an integer array (int64, or int32 converted losslessly), "
                f"got numpy {x.dtype}"
            )
        if x.dtype == np.uint64 and x.size and int(x.max()) > np.iinfo(np.int64).max:
            raise InputError(f"patch_positions: values must fit in int64, got maximum {int(x.max())}")
        return torch.from_numpy(np.array(x, dtype=np.int64, copy=True, order="C"))
    if not isinstance(x, torch.Tensor):
        raise InputError(f"patch_positions: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    return x


class Bounds(Protocol):
    """What inputs are checked against: a ShapeProfile, or one item of a packed call (runtime/packed.py)."""

    @property
    def patch(self) -> int: ...

    def violations(self, batch: int, frames: int, height: int, width: int) -> list[str]: ...


def check_inputs(
    pixel_values: Any, patch_positions: Any, profile: Bounds, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate (pixel_values, patch_positions) for an artifact of `profile` and `dtype`.

    Returns (pixel_values as a rank-5 tensor of `dtype`, patch_positions as int64), both on the device they came in
    on (numpy arrays become CPU tensors). Raises InputError on the first violated rule (see the module docstring).
    """
    pv, pos = _check_ranks(_pixels_to_torch(pixel_values, dtype), _positions_to_torch(patch_positions))
    _check_layout(pv, pos, profile.patch)
    pos = _check_dtypes(pv, pos, dtype)
    _check_shapes(pv, pos, profile)
    _check_values(pv, pos)
    return pv, pos


def _check_ranks(pv: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank 5 pixels (a rank-4 image batch gains T=1) and (B, L, 3) positions."""
    if pv.dim() == 4:
        pv = pv.unsqueeze(2)
    elif pv.dim() != 5:
        raise InputError(
            f"pixel_values: expected rank 5 (B, 3, T, H, W) or rank 4 (B, 3, H, W), "
            f"got rank {pv.dim()} with shape {_shape(pv)}"
        )
    if pos.dim() != 3 or pos.shape[-1] != 3:
        raise InputError(
            f"patch_positions: expected shape (B, L, 3) holding [t, h, w] per token, got shape {_shape(pos)}"
        )
    return pv, pos


def _check_layout(pv: torch.Tensor, pos: torch.Tensor, p: int) -> None:
    """Emptiness, channels, spatial size a multiple of the patch."""
    if pv.numel() == 0:
        raise InputError(f"pixel_values: expected a non-empty tensor, got shape {_shape(pv)}")
    if pos.numel() == 0:
        raise InputError(f"patch_positions: expected a non-empty tensor, got shape {_shape(pos)}")
    _, c, _, h, w = _shape(pv)
    if c != CHANNELS:
        raise InputError(f"pixel_values: expected {CHANNELS} channels (dim 1), got {c} (shape {_shape(pv)})")
    if h % p or w % p:
        raise InputError(f"pixel_values: expected H and W to be positive multiples of {p}, got H={h}, W={w}")


def _check_dtypes(pv: torch.Tensor, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The artifact's float dtype exactly (never cast silently); integer positions, returned as int64."""
    if pv.dtype != dtype:
        raise InputError(
            f"pixel_values: expected dtype {_dtype_name(dtype)} (the artifact's precision), got "
            f"{_dtype_name(pv.dtype)}; cast it first (x{_CAST_HINT.get(dtype, '.to(...)')}), "
            "the runtime never casts silently"
        )
    if pos.dtype not in _INT_DTYPES:
        raise InputError(
            f"patch_positions: expected an integer tensor (int64, or int32 converted losslessly), got "
            f"{_dtype_name(pos.dtype)}"
        )
    if pos.dtype == torch.uint64:
        top = int(pos.max())
        if top > torch.iinfo(torch.int64).max:
            raise InputError(f"patch_positions: values must fit in int64, got maximum {top}")
    return pos if pos.dtype == torch.int64 else pos.to(torch.int64)


def _check_shapes(pv: torch.Tensor, pos: torch.Tensor, profile: Bounds) -> None:
    """Positions against the pixels (batch, one row per patch), the pixels against the profile."""
    p = profile.patch
    b, _, t, h, w = _shape(pv)
    if pos.shape[0] != b:
        raise InputError(f"patch_positions: expected batch {b} (the batch of pixel_values), got {pos.shape[0]}")
    tokens = t * (h // p) * (w // p)
    if pos.shape[1] != tokens:
        raise InputError(
            f"patch_positions: expected L = T*(H/{p})*(W/{p}) = {t}*{h // p}*{w // p} = {tokens} rows, "
            f"got {pos.shape[1]} (shape {_shape(pos)})"
        )
    bad = profile.violations(b, t, h, w)
    if bad:
        raise InputError(f"pixel_values: shape (B={b}, T={t}, H={h}, W={w}) is outside the artifact: " + "; ".join(bad))


def _check_values(pv: torch.Tensor, pos: torch.Tensor) -> None:
    """Finite pixels; positions non-negative and exact in float32 (RoPE's arithmetic)."""
    finite = torch.isfinite(pv)
    if not bool(finite.all()):
        nan = int(torch.isnan(pv).sum())
        inf = int(pv.numel() - int(finite.sum())) - nan
        raise InputError(f"pixel_values: expected finite values, got {nan} NaN and {inf} Inf")
    low, high = int(pos.min()), int(pos.max())
    if low < 0:
        raise InputError(f"patch_positions: expected non-negative [t, h, w], got minimum {low}")
    if high >= MAX_POSITION:
        raise InputError(
            f"patch_positions: expected values below 2**24 = {MAX_POSITION} (RoPE uses them as float32), "
            f"got maximum {high}"
        )
