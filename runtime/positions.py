"""patch_positions builders: dense grids for images and videos, frames on a temporal timeline, codec-style packing.

Every artifact takes explicit positions: (B, L, 3) int64 rows [t, h, w], one per token, in the model's token order
(frame-major, then row-major within a frame: token index = (t_i * Hp + y) * Wp + x for frame i, patch row y and
column x, where Hp = H/14 and Wp = W/14).

- `grid_positions(b, t, hp, wp)`: the dense grid, t = 0..T-1. For an image (T = 1) this is exactly the model's
  default path: `model(pv) == model(pv, patch_positions=image_positions(pv))` bit for bit; for a clip of T <=
  rope_temporal_size frames, `video_positions(pv)` equals the default too.
- `frame_timeline(n, length)`: n sampled frames spread over a `length`-slot timeline (default 64, the model's
  rope_temporal_size), t_i = round(i * (length - 1) / (n - 1)) with round-half-up, computed exactly in integers
  (no float linspace). 16 frames onto 64 -> 0 4 8 13 17 21 25 29 34 38 42 46 50 55 59 63.
- `codec_pack(frames, mask, canvas)`: codec-style selection: the patches chosen by `mask` from many frames are
  packed, in token order, into K canvases of hc x wc patches; each keeps its original [t, h, w]. Returns the packed
  pixel_values (B, 3, K, hc*14, wc*14) and its positions (B, K*hc*wc, 3). `top_patches(scores, budget)` makes such
  a mask from per-patch scores (e.g. codec residual energy or motion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from contract.errors import InputError
from contract.io import PATCH, TIMELINE
from contract.positions import grid_positions


def frame_timeline(num_frames: int, length: int = TIMELINE) -> torch.Tensor:
    """Temporal indices (num_frames,) int64 of `num_frames` evenly sampled frames on a `length`-slot timeline.

    t_i = floor(i * (length - 1) / (num_frames - 1) + 1/2) (round half up), exact integer arithmetic; the first
    frame gets t = 0 and the last t = length - 1. One frame gets t = 0. num_frames must be in [1, length] (more
    frames than slots would give two frames the same t).
    """
    if not 1 <= num_frames <= length:
        raise InputError(f"frame_timeline: expected 1 <= num_frames <= length ({length}), got {num_frames}")
    if num_frames == 1:
        return torch.zeros(1, dtype=torch.int64)
    i = torch.arange(num_frames, dtype=torch.int64)
    den = num_frames - 1
    return (2 * i * (length - 1) + den) // (2 * den)


def _geometry(pixel_values: torch.Tensor | np.ndarray, patch: int) -> tuple[int, int, int, int]:
    shape = tuple(int(d) for d in pixel_values.shape)
    if len(shape) == 4:
        b, _, h, w = shape
        t = 1
    elif len(shape) == 5:
        b, _, t, h, w = shape
    else:
        raise InputError(f"pixel_values: expected rank 4 or 5, got shape {shape}")
    if h % patch or w % patch or h == 0 or w == 0:
        raise InputError(f"pixel_values: expected H and W to be positive multiples of {patch}, got H={h}, W={w}")
    return b, t, h // patch, w // patch


def image_positions(pixel_values: torch.Tensor | np.ndarray, patch: int = PATCH) -> torch.Tensor:
    """Grid positions for images (B, 3, H, W) or (B, 3, 1, H, W): t = 0 everywhere."""
    b, t, hp, wp = _geometry(pixel_values, patch)
    if t != 1:
        raise InputError(f"image_positions: expected one frame, got T={t} (use video_positions)")
    device = pixel_values.device if isinstance(pixel_values, torch.Tensor) else None
    return grid_positions(b, 1, hp, wp, device=device)


def video_positions(
    pixel_values: torch.Tensor | np.ndarray,
    timeline: int | None = None,
    *,
    frame_index: Sequence[int] | torch.Tensor | None = None,
    patch: int = PATCH,
) -> torch.Tensor:
    """Grid positions for a clip (B, 3, T, H, W).

    Frame i gets t = i by default (the model's own grid path), t = frame_timeline(T, timeline)[i] when `timeline`
    is given (T sampled frames spread over the whole timeline), or t = frame_index[i] when given explicitly.
    """
    b, t, hp, wp = _geometry(pixel_values, patch)
    if timeline is not None and frame_index is not None:
        raise InputError("video_positions: pass timeline or frame_index, not both")
    if timeline is not None:
        frame_index = frame_timeline(t, timeline)
    device = pixel_values.device if isinstance(pixel_values, torch.Tensor) else None
    return grid_positions(b, t, hp, wp, frame_index=frame_index, device=device)


def top_patches(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """Boolean mask (B, F, Hp, Wp) keeping the `budget` highest-scoring patches of each sample.

    Ties are broken by token order (earlier frame / row / column first), so the result is deterministic.
    """
    if scores.dim() != 4:
        raise InputError(f"scores: expected shape (B, F, Hp, Wp), got {tuple(scores.shape)}")
    b = scores.shape[0]
    flat = scores.reshape(b, -1).to(torch.float64)
    n = flat.shape[1]
    if not 1 <= budget <= n:
        raise InputError(f"top_patches: budget must be in [1, {n}] (patches per sample), got {budget}")
    order = torch.argsort(-flat, dim=1, stable=True)[:, :budget]
    mask = torch.zeros(b, n, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, order, True)
    return mask.reshape(scores.shape)


def codec_pack(
    frames: torch.Tensor,
    mask: torch.Tensor,
    canvas: tuple[int, int],
    *,
    frame_index: Sequence[int] | torch.Tensor | None = None,
    patch: int = PATCH,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack the patches selected by `mask` from many frames into K canvases; keep each patch's [t, h, w].

    frames: (B, 3, F, H, W) pixel values; mask: (B, F, H/14, W/14) bool, the same number of True per sample, a
    multiple of hc*wc (K = count / (hc*wc)); canvas: (hc, wc) canvas size in patches. frame_index: the temporal
    index of each of the F frames (default 0..F-1; e.g. `frame_timeline(F, 64)` for frames sampled over a clip).

    Selected patches are taken in token order (frame-major, row-major) and written row-major into canvas 0, then
    canvas 1, ... Returns (pixel_values (B, 3, K, hc*14, wc*14), patch_positions (B, K*hc*wc, 3) int64), ready for
    a runner: row i of the positions is the original [t, h, w] of packed token i.
    """
    if frames.dim() != 5:
        raise InputError(f"frames: expected shape (B, 3, F, H, W), got {tuple(frames.shape)}")
    b, c, f, h, w = (int(d) for d in frames.shape)
    if h % patch or w % patch or h == 0 or w == 0:
        raise InputError(f"frames: expected H and W to be positive multiples of {patch}, got H={h}, W={w}")
    hp, wp = h // patch, w // patch
    if tuple(mask.shape) != (b, f, hp, wp) or mask.dtype != torch.bool:
        raise InputError(
            f"mask: expected a bool tensor of shape {(b, f, hp, wp)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    hc, wc = canvas
    if hc < 1 or wc < 1:
        raise InputError(f"canvas: expected positive (hc, wc) in patches, got {canvas}")
    flat = mask.reshape(b, -1)
    counts = flat.sum(dim=1)
    if b and int(counts.min()) != int(counts.max()):
        raise InputError(f"mask: every sample must select the same number of patches, got {counts.tolist()}")
    n = int(counts[0]) if b else 0
    per_canvas = hc * wc
    if n == 0 or n % per_canvas:
        raise InputError(
            f"mask: expected a positive multiple of hc*wc = {hc}*{wc} = {per_canvas} selected patches per sample, "
            f"got {n}"
        )
    k = n // per_canvas
    # Token indices of the selected patches, ascending (= token order) per sample.
    idx = torch.sort(torch.nonzero(flat, as_tuple=False)[:, 1].reshape(b, n), dim=1).values.to(frames.device)

    patches = frames.reshape(b, c, f, hp, patch, wp, patch).permute(0, 2, 3, 5, 1, 4, 6).reshape(b, f * hp * wp, -1)
    chosen = patches.gather(1, idx.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    packed = (
        chosen.reshape(b, k, hc, wc, c, patch, patch)
        .permute(0, 4, 1, 2, 5, 3, 6)
        .reshape(b, c, k, hc * patch, wc * patch)
        .contiguous()
    )
    grid = grid_positions(b, f, hp, wp, frame_index=frame_index, device=frames.device)
    positions = grid.gather(1, idx.unsqueeze(-1).expand(-1, -1, 3)).contiguous()
    return packed, positions
