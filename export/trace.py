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
from contract.profiles import Range, ShapeProfile

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


def export_program(wrapper: EncoderExport, profile: ShapeProfile, device: str = "cpu") -> ExportedProgram:
    """torch.export the wrapper with the profile's dynamic axes (non-strict, size-oblivious backed sizes); the program
    names no device (export/device_free.py), so it runs on any device after `.module().to(device)`."""
    args = example_inputs(wrapper, profile, device)
    with export_mode():
        program = torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(profile), strict=False)
    return make_device_free(program)
