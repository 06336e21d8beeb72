"""Packed calls in the runtime (`Runner.run_packed`): checking each item and a whole call, and splitting a list of
items into calls.

A list of items becomes as few calls as the profile's budget allows (its max tokens and items a call), but never one
that costs more than running its items alone: items are taken shortest first (so a call packs items of similar
length) and an item joins a call only while the call's estimated work stays within `SLACK` of its items' own work
run one at a time. The estimate is the encoder's FLOPs: per token 2*(4*d^2 + 2*d*d_ff) in the linear layers, and in
attention 4*d per pair of tokens attended (mask: every pair of the call's N tokens; padded: B x L_max^2), per layer.
A mask-attention call thus packs small items (where attention is a small part of the work) and runs large ones
alone; a padded one packs whatever has a similar length.
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
class Widths:
    """The encoder's widths the work estimate needs (from the manifest's source config)."""

    hidden: int
    intermediate: int
    layers: int

    @classmethod
    def of(cls, config: dict[str, Any], layers_run: int | None = None) -> Widths:
        layers = layers_run or int(config.get("num_hidden_layers", 24))
        return cls(int(config.get("hidden_size", 1024)), int(config.get("intermediate_size", 4096)), layers)

    def work(self, lengths: Sequence[int], attention: str) -> float:
        """FLOPs of one call over items of these token counts."""
        d, ff = self.hidden, self.intermediate
        n = sum(lengths)
        pairs = n * n if attention == "mask" else len(lengths) * max(lengths) ** 2
        return self.layers * (2 * n * (4 * d * d + 2 * d * ff) + 4 * d * pairs)


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


def plan_calls(lengths: Sequence[int], profile: PackedProfile, attention: str, widths: Widths) -> list[list[int]]:
    """Item indices per call (see the module docstring)."""
    calls: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        call = calls[-1] if calls else []
        joined = [lengths[j] for j in call] + [lengths[i]]
        fits = (
            call
            and sum(joined) <= profile.call_tokens.max
            and len(joined) <= profile.call_items.max
            and widths.work(joined, attention) <= (1 + SLACK) * sum(widths.work([n], attention) for n in joined)
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
