"""Packed calls in the runtime (`Runner.run_packed`): checking each item and a whole call, and splitting a list of
items into calls.

A list of items becomes as few calls as the profile's budget allows (its max tokens and items a call), but never one
that costs more than running its items alone: items are taken shortest first (so a call packs items of similar
length) and an item joins a call only while the call's estimated cost stays within what its items cost run one at a
time (plus the slack of the device's `Costs`, and less the fixed cost of the calls it saves). The estimate is the
encoder's FLOPs: per token 2*(4*d^2 + 2*d*d_ff) in the linear layers, and in attention 4*d per pair of tokens
attended (mask: every pair of the call's N tokens; padded: B x L_max^2), per layer, priced per device type
(`COSTS`): on the CPU, measured with the mixed-workload benchmark (README "Packed benchmark"), a pair attended costs 8x
its FLOPs against the linear layers' (softmax and the mask are memory-bound passes over the heads x L x L scores)
and every call streams the weights once (~0.1 s for the full-size fp32 model: the work of ~60 tokens), so a mask
call packs only items whose extra pairs cost less than the calls saved (items of ~100 tokens or fewer), and a padded
one packs items of similar length; elsewhere (not measured yet) FLOPs alone with 10 % slack for the per-call overhead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from contract.errors import InputError
from contract.packing import CU_DTYPE
from contract.profiles import PackedProfile

from .validation import check_inputs

SLACK = 0.10  # a call may cost this much more than its items run alone (the overhead packing saves is per call)


@dataclass(frozen=True)
class Costs:
    """How the planner prices calls on one device type, in FLOPs of the linear layers: a pair of tokens attended
    costs `attention_weight` x its 4*d FLOPs a layer, a call `flop_per_weight_byte` x the bytes of the weights it
    streams, and a call may cost `slack` more than its items alone."""

    attention_weight: float = 1.0
    flop_per_weight_byte: float = 0.0
    slack: float = SLACK


# Measured on a 2-core Xeon (AVX-512), full size, fp32 (README "Packed benchmark", benchmarks/results/mixed-cpu): a call
# of L tokens took ~95 ms + 1.6 ms x L + 2.1-2.6 us x L^2 (onnxruntime, AOTInductor, pt2, TorchScript: fits over 16
# images of 64-256 tokens run one at a time), i.e. a pair attended ~8x its FLOPs' share against the linear layers,
# and ~95 ms a call: the 1.2 GB of weights streamed at ~230 GFLOP/s / ~12 GB/s = ~20 FLOPs a byte.
COSTS: dict[str, Costs] = {"cpu": Costs(attention_weight=8.0, flop_per_weight_byte=20.0, slack=0.0)}
FLOPS_ONLY = Costs()  # other devices: not measured yet (the GPU check runs the mixed benchmark)


@dataclass(frozen=True)
class Widths:
    """The encoder's widths the work estimate needs (from the manifest's source config)."""

    hidden: int
    intermediate: int
    layers: int

    @classmethod
    def of(cls, config: dict[str, Any], layers_run: int | None = None) -> Widths:
        layers = layers_run or int(config.get("num_hidden_layers", 24))
        return cls(int(config.get("hidden_size", 1024)), int(config.get("intermediate_size", 4096)), layers)

    def work(self, lengths: Sequence[int], attention: str, costs: Costs = FLOPS_ONLY) -> float:
        """FLOPs of one call over items of these token counts (attention priced by `costs`; the call's fixed cost
        is `call_cost`)."""
        d, ff = self.hidden, self.intermediate
        n = sum(lengths)
        pairs = n * n if attention == "mask" else len(lengths) * max(lengths) ** 2
        return self.layers * (2 * n * (4 * d * d + 2 * d * ff) + costs.attention_weight * 4 * d * pairs)

    def call_cost(self, costs: Costs, itemsize: int) -> float:
        """A call's fixed cost in FLOPs: its linear layers' weights (itemsize bytes each) streamed once."""
        d, ff = self.hidden, self.intermediate
        return costs.flop_per_weight_byte * itemsize * self.layers * (4 * d * d + 2 * d * ff)


@dataclass(frozen=True)
class ItemBounds:
    """What `check_inputs` checks one item against: batch 1 and the packed profile's frames/height/width."""

    profile: PackedProfile

    @property
    def patch(self) -> int:
        return self.profile.patch

    def violations(self, batch: int, frames: int, height: int, width: int) -> list[str]:
        extra = [] if batch == 1 else [f"batch {batch}, an item is one sample (batch 1)"]
        return extra + self.profile.item_violations(frames, height, width)


def check_items(
    items: Sequence[tuple[Any, Any]], profile: PackedProfile, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each item (pixel_values (1, 3, T, H, W), patch_positions (1, L, 3)) checked on its own, like a single call's
    inputs, and against the call's token budget; the first bad one is refused by its index, before anything runs."""
    if not items:
        raise InputError("run_packed: expected at least one item, got an empty list")
    one = ItemBounds(profile)
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InputError(f"item {i}: expected a (pixel_values, patch_positions) pair, got {type(item).__name__}")
        try:
            pv, pos = check_inputs(item[0], item[1], one, dtype)
        except InputError as exc:
            raise InputError(f"item {i}: {exc}") from None
        tokens = int(pos.shape[1])
        if tokens > profile.call_tokens.max:
            raise InputError(
                f"item {i}: {tokens} tokens, over profile {profile.name!r}'s budget of {profile.call_tokens.max} a call"
            )
        checked.append((pv, pos))
    return checked


def plan_calls(
    lengths: Sequence[int],
    profile: PackedProfile,
    attention: str,
    widths: Widths,
    costs: Costs = FLOPS_ONLY,
    itemsize: int = 4,
) -> list[list[int]]:
    """Item indices per call (see the module docstring); `costs` of the device, `itemsize` of the weights."""
    calls: list[list[int]] = []
    saved = widths.call_cost(costs, itemsize)  # what each call merged into another saves
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        call = calls[-1] if calls else []
        joined = [lengths[j] for j in call] + [lengths[i]]
        alone = sum(widths.work([n], attention, costs) for n in joined)
        fits = (
            call
            and sum(joined) <= profile.call_tokens.max
            and len(joined) <= profile.call_items.max
            and widths.work(joined, attention, costs) <= (1 + costs.slack) * alone + (len(joined) - 1) * saved
        )
        if fits:
            call.append(i)
        else:
            calls.append([i])
    return calls


def filler(tokens: int, patch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """An item of `tokens` zero patches at [0, 0, 0], appended to a call whose items hold fewer tokens than the
    profile's minimum a call (a lone 1-token item: a TensorRT engine's profile refuses the shorter call). Attention
    keeps items apart, so it changes no other item's output; its own output is left out (`unpack(..., items=)`)."""
    pixels = torch.zeros(1, 3, 1, patch, tokens * patch, dtype=dtype)
    return pixels, torch.zeros(1, tokens, 3, dtype=torch.int64)


def check_call(
    pixel_patches: Any, patch_positions: Any, cu_seqlens: Any, profile: PackedProfile, dtype: torch.dtype, flat: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One packed call's inputs as given (`Runner.run_packed_call`): layout, dtypes, the offsets (from 0, strictly
    increasing, ending at N or 3N) and the budget. One InputError naming what is wrong."""
    pp, pos, cu = (torch.as_tensor(x) for x in (pixel_patches, patch_positions, cu_seqlens))
    width = 3 * profile.patch * profile.patch
    rows = pos.numel() // 3
    expected = {
        "pixel_patches": (rows * width,) if flat else (rows, width),
        "patch_positions": (3 * rows,) if flat else (rows, 3),
    }
    for name, tensor in (("pixel_patches", pp), ("patch_positions", pos)):
        if tuple(tensor.shape) != expected[name]:
            raise InputError(f"{name}: expected shape {expected[name]} for {rows} tokens, got {tuple(tensor.shape)}")
    if pp.dtype != dtype:
        raise InputError(f"pixel_patches: expected dtype {dtype} (the artifact's precision), got {pp.dtype}")
    if pos.dtype != torch.int64 or cu.dtype not in (torch.int32, torch.int64) or cu.dim() != 1:
        raise InputError(f"patch_positions must be int64 and cu_seqlens a 1-D int32, got {pos.dtype} and {cu.dtype}")
    _check_offsets(cu, rows, profile)
    if not bool(torch.isfinite(pp).all()):
        raise InputError("pixel_patches: expected finite values")
    if rows and int(pos.min()) < 0:
        raise InputError(f"patch_positions: expected non-negative [t, h, w], got minimum {int(pos.min())}")
    return pp, pos, cu.to(CU_DTYPE)


def _check_offsets(cu: torch.Tensor, tokens: int, profile: PackedProfile) -> None:
    values = [int(v) for v in cu.tolist()]
    items = len(values) - 1
    if items < 1 or values[0] != 0:
        raise InputError(f"cu_seqlens: expected 0, L_1, L_1+L_2, ..., N (B+1 offsets from 0), got {values[:8]}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise InputError(f"cu_seqlens: expected strictly increasing offsets (every item >= 1 token), got {values[:8]}")
    if values[-1] not in (tokens, 3 * tokens):
        raise InputError(
            f"cu_seqlens: expected the last offset to be N = {tokens} (or 3N = {3 * tokens}, counted in position "
            f"elements), got {values[-1]}"
        )
    if not profile.call_tokens.contains(tokens):
        r = profile.call_tokens
        raise InputError(f"{tokens} tokens in one call, outside profile {profile.name!r}'s range [{r.min}, {r.max}]")
    if not profile.call_items.contains(items):
        r = profile.call_items
        raise InputError(f"{items} items in one call, outside profile {profile.name!r}'s range [{r.min}, {r.max}]")
