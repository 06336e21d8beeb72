"""From a shape profile to a torch.export ExportedProgram: example inputs, Dims, and the export call itself.

Rules the model needs (see export/profiles.py): an axis whose profile min == max is static (no Dim); example
inputs use sizes >= 2 on dynamic axes (torch.export specialises a size-1 example) and lie inside the profile; the
token count L of patch_positions is its own Dim, tied to T*h*w by the model's torch._check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.export import Dim, ExportedProgram

from contract.dtypes import DTYPES
from contract.io import INPUT_NAMES
from contract.positions import grid_positions
from contract.profiles import Range, ShapeProfile
from models import OneVisionEncoderModel, load_model

from .base import ExportError
from .device_free import make_device_free
from .wrapper import EncoderExport

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


def _dim(name: str, r: Range, scale: int = 1) -> Any:
    if r.static:
        return None
    dim = Dim(name, min=r.min // scale, max=r.max // scale)
    return dim if scale == 1 else scale * dim


def dynamic_shapes(profile: ShapeProfile) -> dict[str, dict[int, Any]]:
    """torch.export dynamic_shapes for (pixel_values, patch_positions); static axes are left out."""
    p = profile.patch
    batch = _dim("batch", profile.batch)
    pixels = {
        0: batch,
        2: _dim("frames", profile.frames),
        3: _dim("height_patches", profile.height, p),
        4: _dim("width_patches", profile.width, p),
    }
    positions = {0: batch, 1: _dim("tokens", profile.token_range)}
    return {
        INPUT_NAMES[0]: {axis: d for axis, d in pixels.items() if d is not None},
        INPUT_NAMES[1]: {axis: d for axis, d in positions.items() if d is not None},
    }


def symbolic_shapes(profile: ShapeProfile, hidden: int) -> dict[str, list[int | str]]:
    """Input/output name -> shape with the manifest's symbol for every dynamic axis, the size for static ones."""
    b, t, h, w = (profile.batch, profile.frames, profile.height, profile.width)
    tokens = profile.token_range

    def sym(r: Range, name: str) -> int | str:
        return r.min if r.static else name

    return {
        "pixel_values": [sym(b, "batch"), 3, sym(t, "frames"), sym(h, "height"), sym(w, "width")],
        "patch_positions": [sym(b, "batch"), sym(tokens, "tokens"), 3],
        "last_hidden_state": [sym(b, "batch"), sym(tokens, "tokens"), hidden],
    }


def load_wrapper(
    model_dir: str | os.PathLike[str], precision: str, output_layer: int, device: str = "cpu"
) -> EncoderExport:
    """The eval-mode export wrapper in `precision` on `device` (sdpa, explicit positions, `output_layer`)."""
    model: OneVisionEncoderModel = load_model(model_dir, dtype_of(precision), "sdpa", device=device)
    model.requires_grad_(False)
    try:
        return EncoderExport(model, output_layer).eval()
    except ValueError as exc:
        raise ExportError(str(exc)) from None


@contextmanager
def export_mode() -> Iterator[None]:
    """no_grad and size-oblivious backed sizes (keeps dynamic axes from being specialised on their example)."""
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]
        yield


def example_inputs(wrapper: EncoderExport, profile: ShapeProfile, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    dtype = next(wrapper.parameters()).dtype
    return inputs_at(example_shape(profile), dtype, profile.patch, device)


def export_program(wrapper: EncoderExport, profile: ShapeProfile, device: str = "cpu") -> ExportedProgram:
    """torch.export the wrapper with the profile's dynamic axes (non-strict, size-oblivious backed sizes); the program
    names no device (export/device_free.py), so it runs on any device after `.module().to(device)`."""
    args = example_inputs(wrapper, profile, device)
    with export_mode():
        program = torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(profile), strict=False)
    return make_device_free(program)
