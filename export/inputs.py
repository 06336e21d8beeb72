"""Example inputs and shapes from a shape profile: the seeded inputs every builder traces and verifies with.

Rules the model needs (see contract/profiles.py): an axis whose profile min == max is static; example inputs use
sizes >= 2 on dynamic axes (torch.export specialises a size-1 example) and lie inside the profile.
"""

from __future__ import annotations

from typing import Any

import torch

from contract.dtypes import DTYPES
from contract.io import CHANNELS, PACKED_AXES, SIGNATURE
from contract.packing import pack
from contract.positions import grid_positions
from contract.profiles import PackedProfile, Profile, Range, ShapeProfile

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


ItemShape = tuple[int, int, int]  # (T, H, W) of one packed item


def packed_item_shapes(profile: PackedProfile, which: str) -> list[ItemShape]:
    """The items of a packed call: "example" (what export traces: 2 items, its smallest and its opt one, so N and B
    stay away from 1) or "check" (the build-time check: 3 items in another order, another N and B), each kept
    inside the call's token budget."""
    f, h, w = profile.frames, profile.height, profile.width
    wanted = {
        "example": [(f.min, h.min, w.min), (f.opt, h.opt, w.opt)],
        "check": [(f.opt, h.opt, w.opt), (f.min, h.min, w.min), (f.max, h.min, w.opt)],
    }[which]
    shapes: list[ItemShape] = []
    for shape in wanted:
        if sum(profile.item_tokens(*s) for s in [*shapes, shape]) <= profile.call_tokens.max:
            shapes.append(shape)
    return shapes


def packed_items(
    shapes: list[ItemShape], dtype: torch.dtype, patch: int, device: str | torch.device = "cpu", seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Seeded (pixel_values (1, 3, T, H, W), grid positions (1, L, 3)) per item."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(1, 3, t, h, w, generator=generator).to(device=device, dtype=dtype),
            grid_positions(1, t, h // patch, w // patch, device=device),
        )
        for t, h, w in shapes
    ]


def example_facts(profile: Profile) -> dict[str, Any]:
    """What the manifest records of the example export traced at."""
    if isinstance(profile, PackedProfile):
        return {"example_items": [list(s) for s in packed_item_shapes(profile, "example")]}
    return {"example_shape": list(example_shape(profile))}


def describe(profile: Profile) -> str:
    if isinstance(profile, PackedProfile):
        return f"packed profile {profile.name}, example items (T,H,W) {packed_item_shapes(profile, 'example')}"
    return f"profile {profile.name}, example (B,T,H,W) {example_shape(profile)}"


def packed_symbolic_shapes(profile: PackedProfile, hidden: int, flat: bool) -> dict[str, list[int | str]]:
    sizes: dict[str | int, int | str] = {"hidden": hidden, "patch": CHANNELS * profile.patch * profile.patch}
    layout = PACKED_AXES["flat" if flat else "rows"]
    return {name: [sizes.get(axis, axis) for axis in shape] for name, shape in layout.items()}


def symbolic_shapes(profile: Profile, hidden: int, flat: bool = False) -> dict[str, list[int | str]]:
    """Input/output name -> shape with the manifest's symbol for every dynamic axis (contract.io.SIGNATURE, or
    PACKED_AXES in its rows or `flat` layout), the size for an axis the profile fixes."""
    if isinstance(profile, PackedProfile):
        return packed_symbolic_shapes(profile, hidden, flat)
    ranges = {"batch": profile.batch, "frames": profile.frames, "height": profile.height, "width": profile.width}
    ranges["tokens"] = profile.token_range
    sizes: dict[str | int, int | str] = {s: r.min if r.static else s for s, r in ranges.items()}
    sizes["hidden"] = hidden
    return {name: [sizes.get(axis, axis) for axis in shape] for name, shape in SIGNATURE.items()}


def example_inputs(wrapper: torch.nn.Module, profile: Profile, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """What export traces: seeded inputs at the profile's example shape (packed: its example items, packed; 2-D
    patches and positions for a wrapper that is not `flat`)."""
    dtype = next(wrapper.parameters()).dtype
    if isinstance(profile, PackedProfile):
        items = packed_items(packed_item_shapes(profile, "example"), dtype, profile.patch, device)
        return pack(items, profile.patch)  # rows: what every kind traces
    return inputs_at(example_shape(profile), dtype, profile.patch, device)
