"""The benchmark workloads: named input shapes, and which run on which device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from contract.positions import grid_positions


@dataclass(frozen=True)
class Workload:
    name: str
    batch: int
    frames: int
    height: int
    width: int

    def tokens(self, patch: int) -> int:
        """Tokens per sample for the checkpoint's `patch_size`."""
        return self.frames * (self.height // patch) * (self.width // patch)

    @property
    def images(self) -> int:
        """Images (or frames/canvases) per call, for images/s."""
        return self.batch * self.frames

    def inputs(self, seed: int, dtype: torch.dtype, device: str, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded pixel_values (B,3,T,H,W) and the dense grid positions (B,L,3), int64, for `patch`-px patches."""
        g = torch.Generator().manual_seed(seed)
        pv = torch.randn(self.batch, 3, self.frames, self.height, self.width, generator=g).to(dtype)
        pos = grid_positions(self.batch, self.frames, self.height // patch, self.width // patch, device=device)
        return pv.to(device), pos


WORKLOADS = {
    w.name: w
    for w in (
        Workload("image-448-b1", 1, 1, 448, 448),
        Workload("image-448-b32", 32, 1, 448, 448),
        Workload("video-4x448", 1, 4, 448, 448),
        Workload("codec-8x448", 1, 8, 448, 448),
        Workload("tiny-112-b2", 2, 1, 112, 112),
    )
}
CPU_WORKLOADS = ["image-448-b1"]
GPU_WORKLOADS = ["image-448-b1", "image-448-b32", "video-4x448", "codec-8x448"]
QUICK_WORKLOADS = ["tiny-112-b2"]
