"""Build-time check of an artifact against the eager wrapper it was exported from.

Every builder runs its fresh artifact at the profile's min shape (a shape other than the export example, so the
dynamic axes are exercised) and compares it (`models.metrics.compare`) with the eager sdpa model in the same
precision, run by the bundle's one eager runner (`models.eager.EagerRunner` over the wrapper's own model and
layers). The bounds are loose on purpose: they catch a broken graph, not a last-bit difference (that is the parity
suite's job). Both sides run inside `models.tf32.exact_float32()`: no TF32 in either, whatever the process has set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from contract.backends import BACKENDS
from contract.packing import pack
from contract.profiles import PackedProfile, Profile
from models.eager import EagerRunner
from models.metrics import compare
from models.tf32 import exact_float32

from .base import ExportError
from .inputs import inputs_at, packed_item_shapes, packed_items, profile_shape
from .wrapper import EncoderExport

# rel L2 bounds a build must meet: fp32 graphs reorder float ops only (measured ~1e-6); fp16/bf16 round differently
# in fused kernels (measured ~1e-3 fp16, ~1e-2 bf16).
MAX_REL_L2 = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2}


# (checkpoint files' identity, dtype, layers, device, input shape) -> eager output, kept only inside
# `shared_eager_reference()`: `export all` builds several kinds from one checkpoint and verifies each at the same shape
# with the same seeded input, so eager runs once for all of them.
_EAGER: dict[tuple[Any, ...], torch.Tensor] = {}
_SHARED = {"on": False}


@contextmanager
def shared_eager_reference() -> Iterator[None]:
    """Within the block, the build-time check computes eager once per checkpoint, precision and shape (`export all`).
    Outside it every check computes its own (a test that patches the model between builds gets the patched eager)."""
    _SHARED["on"] = True
    try:
        yield
    finally:
        _SHARED["on"] = False
        _EAGER.clear()


def _checkpoint_identity(wrapper: EncoderExport) -> tuple[Any, ...]:
    folder = Path(str(wrapper.model.config._name_or_path))
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return (str(folder.resolve()), *((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)) if files else ()


def eager_output(wrapper: EncoderExport, pixels: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The eager model's output for the build-time check, computed once per checkpoint, precision, layers, device
    and input shape in this process (the input is the seeded one of `inputs_at`)."""
    identity = _checkpoint_identity(wrapper) if _SHARED["on"] else ()
    key = (identity, pixels.dtype, wrapper.num_layers, str(pixels.device), tuple(pixels.shape), tuple(positions.shape))
    if identity and key in _EAGER:
        return _EAGER[key]
    out = EagerRunner(wrapper.model, wrapper.num_layers, exact_fp32=True)(pixels, positions)
    if identity:
        _EAGER.clear()  # one entry: a process verifies one request's artifacts at a time
        _EAGER[key] = out
    return out


def verify_artifact(
    kind: str,
    run: Callable[..., torch.Tensor],
    wrapper: EncoderExport,
    profile: Profile,
    precision: str,
    device: str = "cpu",
    which: str = "min",
) -> dict[str, Any]:
    """Run `run(*inputs)` and the eager model at one profile shape (packed: a call of the profile's check items,
    against each item run alone through eager); raise if they differ."""
    dtype = next(wrapper.parameters()).dtype
    if isinstance(profile, PackedProfile):
        shapes = packed_item_shapes(profile, "check")
        items = packed_items(shapes, dtype, profile.patch, device, seed=1)
        expected = torch.cat([eager_output(wrapper, pv, pos)[0] for pv, pos in items])
        inputs: tuple[torch.Tensor, ...] = pack(items, profile.patch, flat=BACKENDS[kind].packed_flat)
        where = f"items (T,H,W) {shapes}"
        facts: dict[str, Any] = {"items": [list(x) for x in shapes]}
    else:
        shape = profile_shape(profile, which)
        inputs = inputs_at(shape, dtype, profile.patch, device, seed=1)
        expected = eager_output(wrapper, *inputs)
        where = f"shape {shape}"
        facts = {"shape": list(shape)}
    with torch.no_grad(), exact_float32():
        actual = run(*inputs)
    return {**facts, **_judge(kind, actual, expected, precision, where)}


def _judge(kind: str, actual: torch.Tensor, expected: torch.Tensor, precision: str, where: str) -> dict[str, Any]:
    try:
        m = compare(actual, expected)
    except ValueError:
        raise ExportError(f"artifact output shape {tuple(actual.shape)} != eager {tuple(expected.shape)}") from None
    stats = {"max_abs": m.max_abs, "rel_l2": m.rel_l2, "finite": m.nonfinite == 0}
    bound = MAX_REL_L2[precision]
    if not stats["finite"] or m.rel_l2 > bound:
        raise ExportError(
            f"{kind}: artifact output differs from eager at {where} (rel L2 {m.rel_l2:.2e} > {bound:.0e}, "
            f"max abs {m.max_abs:.2e}, {m.nonfinite} non-finite): the exported graph is wrong"
        )
    return {"reference": f"eager sdpa {precision}", "max_rel_l2": bound, **stats}
