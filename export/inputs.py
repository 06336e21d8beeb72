"""Example inputs and shapes from a shape profile: the seeded inputs every builder traces and verifies with.

Rules the model needs (see contract/profiles.py): an axis whose profile min == max is static; example inputs use
sizes >= 2 on dynamic axes (torch.export specialises a size-1 example) and lie inside the profile.
"""

from __future__ import annotations

import torch

from contract.dtypes import DTYPES
from contract.io import DYNAMIC_AXES
from contract.positions import grid_positions
from contract.profiles import Range, ShapeProfile

from .base import ExportError

Shape = tuple[int, int, int, int]  # (B, T, H, W) in pixels


def dtype_of(precision: str) -> torch.dtype:
    try:
        return DTYPES[precision]
    except KeyError:
        raise ExportError(f"precision {precision!r} is not supported: use one of {', '.join(DTYPES)}") from None


def inputs_at(
    shape: Shape, dtype: torch.dtype, patch: int, device: str | torch.device = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded pixel_values (B, 3, T, H, W) and grid patch_positions for one concrete shape."""
    b, t, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(b, 3, t, h, w, generator=generator).to(device=device, dtype=dtype)
    return pixels, grid_positions(b, t, h // patch, w // patch, device=device)


def profile_shape(profile: ShapeProfile, which: str) -> Shape:
    """(B, T, H, W) at 'min', 'opt' or 'max'."""
    b, t, h, w = (getattr(getattr(profile, axis), which) for axis in ("batch", "frames", "height", "width"))
    return int(b), int(t), int(h), int(w)


def _example(r: Range, scale: int = 1) -> int:
    """A size inside the range, >= 2 when the axis is dynamic (in units of `scale` pixels)."""
    lo, opt, hi = r.min // scale, r.opt // scale, r.max // scale
    if lo == hi:
        return lo * scale
    return min(max(opt, 2, lo), hi) * scale


def example_shape(profile: ShapeProfile) -> Shape:
    p = profile.patch
    return (_example(profile.batch), _example(profile.frames), _example(profile.height, p), _example(profile.width, p))


def describe(profile: ShapeProfile) -> str:
    return f"profile {profile.name}, example (B,T,H,W) {example_shape(profile)}"


def symbolic_shapes(profile: ShapeProfile, hidden: int) -> dict[str, list[int | str]]:
    """Input/output name -> shape with the manifest's symbol for every dynamic axis (contract.io.DYNAMIC_AXES), the
    size for an axis the profile fixes."""
    ranges = {"batch": profile.batch, "frames": profile.frames, "height": profile.height, "width": profile.width}
    ranges["tokens"] = profile.token_range
    fixed: dict[str, list[int | str]] = {
        "pixel_values": [0, 3, 0, 0, 0],
        "patch_positions": [0, 0, 3],
        "last_hidden_state": [0, 0, hidden],
    }
    for name, axes in DYNAMIC_AXES.items():
        for axis, symbol in axes.items():
            r = ranges[symbol]
            fixed[name][axis] = r.min if r.static else symbol
    return fixed


def example_inputs(wrapper: torch.nn.Module, profile: ShapeProfile, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    dtype = next(wrapper.parameters()).dtype
    return inputs_at(example_shape(profile), dtype, profile.patch, device)
