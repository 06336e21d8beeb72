"""Codec-style inputs: the encoder sees only the informative patches of many frames (the bundle's own policy).

F frames are sampled and preprocessed as for `video_inputs` (crop mode), every 14 x 14 patch gets a score, the
`budget` best patches are kept (`runtime.positions.top_patches`) and packed into canvases
(`runtime.positions.codec_pack`) that keep each patch's original [t, h, w] on the timeline. The default score
(`residual_scores`) is a cheap stand-in for a codec's residual: each patch's mean squared difference against the same
patch of the previous sampled frame (in normalised pixel values). The first frame has no previous frame; like a
codec's I-frame (and the upstream codec pipeline, which keeps the first frame of each group whole) it is kept whole by
default (`keyframe=True`: score +inf); with `keyframe=False` it is scored against the next frame instead. Scores
(F, Hp, Wp) or a precomputed list of [t, h, w] rows (`selection.py`) may be given instead.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..positions import PATCH, TIMELINE, codec_pack, frame_timeline, top_patches
from .inputs import MediaError, MediaInputs, require_file
from .processor import frames_pixels
from .selection import Selection, selection_mask
from .video import check_frames, count_frames, read_video


def residual_scores(frames: torch.Tensor, *, keyframe: bool = True, patch: int = PATCH) -> torch.Tensor:
    """Per-patch pixel-difference energy of a clip: (B, 3, F, H, W) -> (B, F, H/p, W/p) float32.

    score[f] = mean over the patch's 3 x p x p values of (x[f] - x[f-1])^2. Frame 0 has no previous frame: with
    `keyframe` it scores +inf (kept whole, like an I-frame), otherwise it gets the residual against frame 1 (0 for a
    single frame).
    """
    if frames.dim() != 5:
        raise MediaError(f"frames: expected (B, 3, F, H, W), got {tuple(frames.shape)}")
    b, c, f, h, w = (int(d) for d in frames.shape)
    if h % patch or w % patch:
        raise MediaError(f"frames: H and W must be multiples of {patch}, got {h}x{w}")
    hp, wp = h // patch, w // patch
    x = frames.to(torch.float32)
    diff = (x[:, :, 1:] - x[:, :, :-1]).pow(2)
    energy = diff.reshape(b, c, f - 1, hp, patch, wp, patch).mean(dim=(1, 4, 6))  # (B, F-1, hp, wp)
    if keyframe:
        first = torch.full((b, 1, hp, wp), float("inf"))
    elif f > 1:
        first = energy[:, :1]
    else:
        first = torch.zeros(b, 1, hp, wp)
    return torch.cat((first, energy), dim=1)


def check_scores(scores: torch.Tensor | np.ndarray, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """Caller-given scores (F, Hp, Wp) or (1, F, Hp, Wp) -> a (1, F, Hp, Wp) tensor; MediaError on shape or NaN."""
    score = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    if score.dim() == 3:
        score = score.unsqueeze(0)
    if tuple(score.shape) != shape:
        raise MediaError(
            f"scores: expected shape {shape[1:]} (frames, patch rows, patch columns), got {tuple(score.shape)}"
        )
    if bool(torch.isnan(score).any()):
        raise MediaError("scores: NaN values")
    return score


def codec_inputs(
    path: str | os.PathLike[str],
    processor: Any,
    *,
    num_frames: int | None = None,
    canvases: int | None = None,
    size: int | None = None,
    scores: torch.Tensor | np.ndarray | None = None,
    selection: Selection | None = None,
    keyframe: bool = True,
    timeline: int = TIMELINE,
) -> MediaInputs:
    """Codec-style inputs: the best patches of many frames packed into `canvases` frame-sized canvases.

    num_frames: frames sampled over the clip (default: all of them, at most `timeline`); they sit on the timeline
        like `video_inputs` frames. canvases: how many frame-sized canvases to fill (default: a quarter of the sampled
        frames, at least one); the budget is canvases x patches per frame. scores: (F, Hp, Wp) or (1, F, Hp, Wp) per
        patch, higher = keep (default `residual_scores`). selection: [t, h, w] rows to keep instead of scoring; their
        count must fill whole canvases.
    """
    if scores is not None and selection is not None:
        raise MediaError("codec: pass scores or a selection, not both")
    p = require_file(path)
    if num_frames is None:
        total = count_frames(p)
        if total == 0:
            raise MediaError(f"{p}: the video stream has no frames")
        num_frames = min(total, timeline)
    check_frames(num_frames, timeline)
    images, indices, total = read_video(p, num_frames)
    frames = frames_pixels(images, processor, mode="crop", size=size)  # (1, 3, F, H, W)
    _, _, f, h, w = frames.shape
    hp, wp = h // PATCH, w // PATCH
    shape = (1, f, hp, wp)
    if selection is not None:
        mask = selection_mask(selection, shape)
        count = int(mask.sum())
        if count % (hp * wp):
            raise MediaError(
                f"selection: {count} patches do not fill whole canvases of {hp}x{wp} = {hp * wp} patches; "
                f"give a multiple of {hp * wp}"
            )
        k = count // (hp * wp)
        how = "selection"
    else:
        k = max(1, f // 4) if canvases is None else canvases
        if not 1 <= k <= f:
            raise MediaError(f"canvases must be in [1, {f}] (the number of sampled frames), got {k}")
        if scores is None:
            score = residual_scores(frames, keyframe=keyframe)
            how = "residual+keyframe" if keyframe else "residual"
        else:
            score = check_scores(scores, shape)
            how = "scores"
        mask = top_patches(score, k * hp * wp)
    t = frame_timeline(f, timeline)
    pixels, positions = codec_pack(frames, mask, (hp, wp), frame_index=t)
    per_frame = mask[0].reshape(f, -1).sum(dim=1).tolist()
    details = {
        "frame_indices": indices,
        "total_frames": total,
        "timeline": t.tolist(),
        "canvases": k,
        "selected": int(mask.sum()),
        "candidates": f * hp * wp,
        "selected_per_frame": per_frame,
        "scoring": how,
        "original_size": list(images[0].size),
    }
    return MediaInputs(pixels, positions, "codec", "codec", str(p), details)
