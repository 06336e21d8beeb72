"""From a shape profile to a torch.export ExportedProgram: the Dims and the export call itself.

An axis whose profile min == max is static (no Dim); the token count L of patch_positions is its own Dim, tied to
T*h*w by the model's torch._check. Example inputs: export/inputs.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.export import Dim, ExportedProgram

from contract.io import DYNAMIC_AXES, INPUT_NAMES
from contract.profiles import PackedProfile, Profile, Range, ShapeProfile

from .device_free import make_device_free
from .inputs import example_inputs
from .wrapper import EncoderExport


def _dim(name: str, r: Range, scale: int = 1) -> Any:
    if r.static:
        return None
    dim = Dim(name, min=r.min // scale, max=r.max // scale)
    return dim if scale == 1 else scale * dim


def dynamic_shapes(profile: ShapeProfile) -> dict[str, dict[int, Any]]:
    """torch.export dynamic_shapes for the inputs, axis by axis as contract.io.DYNAMIC_AXES declares them (one Dim
    per symbol, shared between inputs; H and W as multiples of the patch); static axes are left out."""
    p = profile.patch
    dims = {
        "batch": _dim("batch", profile.batch),
        "frames": _dim("frames", profile.frames),
        "height": _dim("height_patches", profile.height, p),
        "width": _dim("width_patches", profile.width, p),
        "tokens": _dim("tokens", profile.token_range),
    }
    return {
        name: {axis: dims[symbol] for axis, symbol in DYNAMIC_AXES[name].items() if dims[symbol] is not None}
        for name in INPUT_NAMES
    }


@contextmanager
def export_mode() -> Iterator[None]:
    """no_grad and size-oblivious backed sizes (keeps dynamic axes from being specialised on their example)."""
    with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]
        yield


def packed_dynamic_shapes(profile: PackedProfile) -> dict[str, dict[int, Any]]:
    """torch.export dynamic_shapes of the packed inputs in rows layout: N tokens, (N, C*p*p) patches and (N, 3)
    positions, and B items (cu_seqlens is B+1 long)."""
    tokens = Dim("tokens", min=profile.call_tokens.min, max=profile.call_tokens.max)
    items = Dim("items", min=profile.call_items.min, max=profile.call_items.max)
    return {"pixel_patches": {0: tokens}, "patch_positions": {0: tokens}, "cu_seqlens": {0: items + 1}}


def export_program(wrapper: EncoderExport, profile: Profile, device: str = "cpu") -> ExportedProgram:
    """torch.export the wrapper with the profile's dynamic axes (non-strict, size-oblivious backed sizes); the program
    names no device (export/device_free.py), so it runs on any device after `.module().to(device)`."""
    args = example_inputs(wrapper, profile, device)
    shapes = packed_dynamic_shapes(profile) if isinstance(profile, PackedProfile) else dynamic_shapes(profile)
    with export_mode():
        program = torch.export.export(wrapper, args, dynamic_shapes=shapes, strict=False)
    return make_device_free(program)
