"""Precomputed patch selections: [t, h, w] rows read from .npy / .json files and checked against a clip's grid.

t is the index of the sampled frame (not the timeline slot), h/w the patch row/column. A selection must name each
patch once and stay inside the (frames, rows, columns) grid; every failure is one MediaError line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch

from .inputs import MediaError, require_file

Selection = torch.Tensor | np.ndarray | Sequence[Sequence[int]]


def selection_mask(selection: Selection, shape: tuple[int, ...]) -> torch.Tensor:
    """A (1, F, Hp, Wp) bool mask from a list of [t, h, w] rows (t = sampled-frame index, h/w = patch row/column)."""
    rows = torch.as_tensor(np.asarray(selection, dtype=np.int64))
    if rows.dim() != 2 or rows.shape[1] != 3 or rows.shape[0] == 0:
        raise MediaError(f"selection: expected a non-empty list of [t, h, w] rows, got shape {tuple(rows.shape)}")
    _, f, hp, wp = shape
    for axis, (name, bound) in enumerate((("t (sampled frame)", f), ("h (patch row)", hp), ("w (patch column)", wp))):
        col = rows[:, axis]
        if int(col.min()) < 0 or int(col.max()) >= bound:
            raise MediaError(
                f"selection: {name} must lie in [0, {bound}), got values in [{int(col.min())}, {int(col.max())}]"
            )
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[0, rows[:, 0], rows[:, 1], rows[:, 2]] = True
    dupes = rows.shape[0] - int(mask.sum())
    if dupes:
        raise MediaError(f"selection: {dupes} duplicate [t, h, w] row(s)")
    return mask


def load_selection(path: str | os.PathLike[str]) -> np.ndarray:
    """Read [t, h, w] rows from .npy (int array (K, 3)) or .json (a list of [t, h, w])."""
    p = require_file(path)
    try:
        if p.suffix == ".npy":
            return np.asarray(np.load(p, allow_pickle=False), dtype=np.int64)
        return np.asarray(json.loads(p.read_text()), dtype=np.int64)
    except (ValueError, OSError, TypeError) as exc:
        raise MediaError(f"{p}: cannot read [t, h, w] rows ({exc})") from None
