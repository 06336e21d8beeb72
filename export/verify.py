"""Build-time check of an artifact against the eager wrapper it was exported from.

Every builder runs its fresh artifact at the profile's min shape (a shape other than the export example, so the
dynamic axes are exercised) and compares it (`models.metrics.compare`) with the eager sdpa model in the same
precision, run by the bundle's one eager runner (`models.eager.EagerRunner` over the wrapper's own model and
layers). The bounds are loose on purpose: they catch a broken graph, not a last-bit difference (that is the parity
suite's job). Both sides run inside `models.tf32.exact_float32()`: no TF32 in either, whatever the process has set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from contract.profiles import ShapeProfile
from models.eager import EagerRunner
from models.metrics import compare
from models.tf32 import exact_float32

from .base import ExportError
from .inputs import inputs_at, profile_shape
from .wrapper import EncoderExport

# rel L2 bounds a build must meet: fp32 graphs reorder float ops only (measured ~1e-6); fp16/bf16 round differently
# in fused kernels (measured ~1e-3 fp16, ~1e-2 bf16).
MAX_REL_L2 = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2}


def verify_artifact(
    kind: str,
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    wrapper: EncoderExport,
    profile: ShapeProfile,
    precision: str,
    device: str = "cpu",
    which: str = "min",
) -> dict[str, Any]:
    """Run `run(pixel_values, patch_positions)` and the eager wrapper at one profile shape; raise if they differ."""
    eager = EagerRunner(wrapper.model, wrapper.num_layers, exact_fp32=True)
    shape = profile_shape(profile, which)
    pixels, positions = inputs_at(shape, eager.dtype, profile.patch, device, seed=1)
    expected = eager(pixels, positions)
    with torch.no_grad(), exact_float32():
        actual = run(pixels, positions)
    try:
        m = compare(actual, expected)
    except ValueError:
        raise ExportError(f"artifact output shape {tuple(actual.shape)} != eager {tuple(expected.shape)}") from None
    stats = {"max_abs": m.max_abs, "rel_l2": m.rel_l2, "finite": m.nonfinite == 0}
    bound = MAX_REL_L2[precision]
    if not stats["finite"] or m.rel_l2 > bound:
        raise ExportError(
            f"{kind}: artifact output differs from eager at shape {shape} (rel L2 {m.rel_l2:.2e} > {bound:.0e}, "
            f"max abs {m.max_abs:.2e}, {m.nonfinite} non-finite): the exported graph is wrong"
        )
    return {"shape": list(shape), "reference": f"eager sdpa {precision}", "max_rel_l2": bound, **stats}
