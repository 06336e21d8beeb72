"""What every media path shares: the one error type, the model inputs it produces, and the checks on a file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.errors import InputError


class MediaError(InputError):
    """A media file cannot become model inputs; the message (one line) names the file and what is wrong."""


class ImageTooLarge(MediaError):
    """An image whose header claims more pixels than Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS x 2):
    refused before its pixels are decoded."""


@dataclass
class MediaInputs:
    """Model inputs made from one media file: pass `pixel_values` and `patch_positions` to any runner or model."""

    pixel_values: torch.Tensor  # (1, 3, T, H, W) float32
    patch_positions: torch.Tensor  # (1, L, 3) int64, L = T * H/14 * W/14
    kind: str  # "image" | "video" | "codec"
    mode: str  # "crop" | "native" | "codec"
    source: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return int(self.patch_positions.shape[1])


def require_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path if it is a non-empty regular file; MediaError naming what it is otherwise."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if not p.is_file():
        raise MediaError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: empty file (0 bytes)")
    return p
