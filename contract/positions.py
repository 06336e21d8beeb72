"""The dense [t, h, w] grid of patch positions, written once: the model's default RoPE grid, export's example
inputs, the runtime's image/video positions, parity cases and benchmark workloads all use `grid_positions`.

Token order (the model's): frame-major, then row-major within a frame: token index = (i * Hp + y) * Wp + x for frame
i, patch row y and column x.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import InputError


def _frame_index(
    frames: int, frame_index: Sequence[int] | torch.Tensor | None, device: torch.device | None
) -> torch.Tensor:
    if frame_index is None:
        return torch.arange(frames, dtype=torch.int64, device=device)
    idx = torch.as_tensor(frame_index, dtype=torch.int64, device=device).flatten()
    if idx.numel() != frames:
        raise InputError(f"frame_index: expected {frames} temporal indices (one per frame), got {idx.numel()}")
    if idx.numel() and int(idx.min()) < 0:
        raise InputError(f"frame_index: expected non-negative indices, got minimum {int(idx.min())}")
    return idx


def grid_positions(
    batch: int,
    frames: int,
    height: int,
    width: int,
    *,
    frame_index: Sequence[int] | torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Dense (batch, frames*height*width, 3) int64 [t, h, w] grid on `device`; height/width in patches.

    Frame i gets t = frame_index[i] (default i). Built on `device` directly (no host copy, no `.to(device)` node).
    """
    for name, value in (("batch", batch), ("frames", frames), ("height", height), ("width", width)):
        if value < 1:
            raise InputError(f"grid_positions: {name} must be >= 1, got {value}")
    dev = None if device is None else torch.device(device)
    t = _frame_index(frames, frame_index, dev)
    rows = torch.arange(height, dtype=torch.int64, device=dev)
    cols = torch.arange(width, dtype=torch.int64, device=dev)
    tt, hh, ww = torch.meshgrid(t, rows, cols, indexing="ij")
    grid = torch.stack((tt, hh, ww), dim=-1).reshape(1, -1, 3)
    return grid.expand(batch, -1, -1).contiguous()
