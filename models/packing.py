"""Packed sequences: the tokens of B items of different shapes as one sequence of N tokens, and attention that keeps
each item to itself.

Where each item's tokens lie comes from `cu_seqlens` (B+1,): 0, L_1, L_1+L_2, ..., N (as vLLM's vision encoders take
it). The same offsets counted in elements of the flat (3N,) positions (Triton's
BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO over `patch_positions`, 3 per token) are taken too: the last entry tells
which (N or 3N).

Two ways to attend, chosen per backend by measurement (README, packed batches):
- "mask": attention over all N tokens with a block-diagonal mask built from the offsets (N x N). Every exporter and
  runtime expresses it (ONNX, TensorRT, OpenVINO, TorchScript); the work grows with N^2, so a call packs up to the
  profile's opt token count.
- "padded": the items' queries, keys and values scattered into a (B, L_max) padded batch with a key-padding mask,
  attended, gathered back. Work grows with B x L_max^2 (near the items' own sum of L^2 when a call packs items of
  similar length); L_max is read from the offsets, a data-dependent size: torch.export and AOTInductor take it,
  ONNX exporters do not.
Everything else in the encoder (linear layers, norms, RoPE) works token by token, so it runs on the packed tokens as
they are, without padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MODES = ("mask", "padded")


def token_offsets(cu_seqlens: torch.Tensor, tokens: int | torch.SymInt) -> torch.Tensor:
    """int64 token offsets (B+1,) from `cu_seqlens` in tokens or in position elements (3 per token)."""
    cu = cu_seqlens.to(torch.int64)
    return torch.where(cu[-1] == tokens, cu, torch.div(cu, 3, rounding_mode="floor"))  # type: ignore[call-overload]


@dataclass
class Packing:
    """Which item each of the N packed tokens belongs to, and the attention that keeps each item to itself. The
    padded layout (slot of each token, longest item, key mask) is worked out once per call, not per layer."""

    mode: str
    item: torch.Tensor  # (N,) int64: the item of each token
    offsets: torch.Tensor  # (B+1,) int64 token offsets
    slot: torch.Tensor | None = None  # padded: (N,) each token's place in its item
    longest: Any = None  # padded: L_max (data-dependent: an unbacked symbol under torch.export)
    keep: torch.Tensor | None = None  # padded: (B, 1, L_max, L_max) bool, True on real keys

    @classmethod
    def from_offsets(cls, cu_seqlens: torch.Tensor, positions: torch.Tensor, mode: str) -> Packing:
        """From the offsets and the (N, 3) positions of the packed tokens. Every index is derived from the inputs
        (no arange on a device: an exported program names none, export/device_free.py)."""
        if mode not in MODES:
            raise ValueError(f"packed attention must be one of {MODES}, got {mode!r}")
        offsets = token_offsets(cu_seqlens, positions.shape[0])
        index = torch.cumsum(torch.ones_like(positions[:, 0]), dim=0) - 1  # 0..N-1
        item = (index[:, None] >= offsets[None, 1:]).sum(dim=-1)  # tokens past the end of items 0..b-1
        packing = cls(mode, item, offsets)
        if mode == "padded":
            lengths = offsets[1:] - offsets[:-1]
            longest: Any = lengths.max().item()
            torch._check_is_size(longest)
            torch._check(longest >= 1)
            packing.slot = index - offsets[item]
            keep = item.new_zeros(lengths.shape[0], longest, dtype=torch.bool)  # (B, L_max): True on real keys
            keep[item, packing.slot] = True
            packing.longest = longest
            packing.keep = keep[:, None, None, :].expand(-1, 1, longest, -1)  # explicit: no broadcast guard on L_max
        return packing

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """(1, heads, N, head_dim) queries, keys, values of the packed tokens -> (1, N, heads, head_dim)."""
        if self.mode == "mask":
            same_item = self.item[:, None] == self.item[None, :]
            # A non-finite key or value must not reach another item: a masked score is -inf only for a finite key
            # (NaN + -inf is NaN) and a zero weight times a NaN value is NaN. Finite keys and values are unchanged;
            # the item that holds them keeps its NaN (through its queries and its residual stream).
            k, v = (torch.where(torch.isfinite(x), x, torch.zeros_like(x)) for x in (k, v))
            # Additive (0 within the item, -inf across), as ATen turns a bool mask, rather than bool: the ONNX
            # exporter guards a bool mask's softmax against fully masked rows with IsNaN + Where over every layer's
            # scores (a quarter of a 1,024-token call in onnxruntime, also in OpenVINO's graph); no row here is fully
            # masked, a token always sees its own item.
            bias = torch.zeros_like(same_item, dtype=q.dtype).masked_fill(~same_item, float("-inf"))
            out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
            return out.transpose(1, 2)
        return self._padded(q, k, v, scale)

    def _padded(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        assert self.slot is not None and self.keep is not None
        heads, dim, items = q.shape[1], q.shape[3], self.offsets.shape[0] - 1

        def pad(x: torch.Tensor) -> torch.Tensor:  # (1, H, N, D) -> (B, H, L_max, D)
            out = x.new_zeros(items, self.longest, heads, dim)
            out[self.item, self.slot] = x[0].transpose(0, 1)
            return out.transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=self.keep, scale=scale)
        return out.transpose(1, 2)[self.item, self.slot][None]  # back to (1, N, H, D)
