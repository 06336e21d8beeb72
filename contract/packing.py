"""Packed calls, declared once: the tokens of B items of different shapes as one sequence (vLLM's vision-encoder
layout), shared by the model's packed entry point, its exports, the runtime, parity and serving.

    pixel_patches (N, C*p*p)   every token's C x p x p patch, in token order ("rows")
    patch_positions (N, 3)     int64 [t, h, w] per token
    cu_seqlens (B+1,)          int32 0, L_1, L_1+L_2, ..., N  (or the same counted in position elements, x3)
    -> last_hidden_state (N, hidden)

ONNX graphs and what is built from them (TensorRT engines, OpenVINO IRs) take the two data inputs "flat", (N*C*p*p,)
and (N*3,): Triton's ONNX Runtime and TensorRT backends hand a model its ragged inputs concatenated as 1-D tensors
(`allow_ragged_batch`), and its BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO batch input counts the elements of
`patch_positions` (3 per token), which the graph takes too (models/packing.py). torch artifacts keep the rows: a flat
pair is two sizes tied by 196, and torch.export's unlifted module checks that tie in floating point, wrongly for half
of all N (torch 2.13: `1/196 * 21756 == 111` is False). Each manifest records its layout (its inputs' shapes); the
runtime packs accordingly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from .io import PACKED_INPUT_NAMES as PACKED_INPUT_NAMES  # re-exported: declared with the signature in contract.io

CU_DTYPE = torch.int32


def flatten_patches(pixel_values: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T*(H/p)*(W/p), C*p*p): each patch as one row, in token order (frame-major, then
    row-major) and in the patch-embedding weight's own layout (channel, then row, then column within the patch)."""
    b, c, t, h, w = pixel_values.shape
    grid = pixel_values.reshape(b, c, t, h // patch, patch, w // patch, patch)
    return grid.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, -1, c * patch * patch)


def pack(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]], patch: int, flat: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items of (pixel_values (1, C, T, H, W), patch_positions (1, L, 3)) -> the packed call's three inputs, as rows
    (N, C*p*p) and (N, 3), or `flat`."""
    patches = torch.cat([flatten_patches(pv, patch)[0] for pv, _ in items])
    positions = torch.cat([pos[0] for _, pos in items])
    lengths = torch.tensor([0] + [int(pos.shape[1]) for _, pos in items], dtype=torch.int64)
    cu = torch.cumsum(lengths, 0).to(CU_DTYPE)
    if flat:
        return patches.reshape(-1), positions.reshape(-1), cu
    return patches, positions, cu


def unpack(output: torch.Tensor, cu_seqlens: torch.Tensor, items: int | None = None) -> list[torch.Tensor]:
    """(N, hidden) -> one (1, L_i, hidden) tensor per item, in order; the first `items` only if given (a runtime
    plan's filler item comes last: runtime/packed.py)."""
    bounds = [int(v) for v in cu_seqlens.tolist()]
    return [output[a:b][None] for a, b in itertools.pairwise(bounds)][:items]
