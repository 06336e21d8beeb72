"""Mixed workloads for packed batches (`python -m benchmarks.mixed`): seeded lists of items of different shapes, and
the calls each strategy makes of them.

An item is one sample, (pixel_values (1, 3, T, H, W), patch_positions (1, L, 3)), of one of three sources:
- image: T = 1, H x W at an aspect ratio of 1:1, 4:3, 3:4, 16:9, 9:16, 2:1 or 1:2 (grid positions);
- clip: T frames at 1:1, 4:3 or 3:4, spread over the model's 64-slot timeline (`video_positions(pv, 64)`);
- codec: a codec-style selection, K canvases of the patches chosen from 4K frames (`top_patches` of seeded scores,
  `codec_pack`): each token keeps its original [t, h, w].
Every mix is seeded: the same seed gives the same shapes, pixels and order (the order the items arrive in).

Strategies (the calls made of a list of items):
- one at a time: one call an item (a batched artifact, B = 1);
- padded to the largest: items taken shortest first, a batch grows while B x (the batch's largest T x H x W in
  tokens) stays within the token budget; every item padded to that T/H/W with zero pixels and the grid positions of
  the padded size. A throughput baseline only: a padded item's output is not its own (its tokens attend to the
  padding);
- packed: `Runner.plan_packed` (runtime/packed.py): the items' own tokens, one sequence a call.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from contract.positions import grid_positions
from runtime.positions import codec_pack, frame_timeline, image_positions, top_patches, video_positions

Inputs = tuple[torch.Tensor, torch.Tensor]
IMAGE_RATIOS = ((1, 1), (4, 3), (3, 4), (16, 9), (9, 16), (2, 1), (1, 2))
CLIP_RATIOS = ((1, 1), (4, 3), (3, 4))
TIMELINE = 64


@dataclass(frozen=True)
class Item:
    """One item's shape: its source ("image", "clip", "codec") and (T, H, W) in pixels."""

    source: str
    frames: int
    height: int
    width: int

    def tokens(self, patch: int) -> int:
        return self.frames * (self.height // patch) * (self.width // patch)


@dataclass(frozen=True)
class Mix:
    """A seeded mixed workload: how many items of each source and their ranges (pixel sides are multiples of the
    patch size, ranges inclusive)."""

    name: str
    note: str
    images: int
    image_sides: tuple[int, int]
    clips: int
    clip_frames: tuple[int, int]
    clip_sides: tuple[int, int]
    codecs: int
    codec_canvases: tuple[int, int]
    canvas: int  # a codec canvas's side in pixels

    def shapes(self, seed: int, patch: int = 14) -> list[Item]:
        """The items' shapes in arrival order (a seeded shuffle of images, clips and codec selections)."""
        rng = random.Random(f"{self.name}:{seed}")
        items = [_sided(rng, "image", 1, self.image_sides, IMAGE_RATIOS, patch) for _ in range(self.images)]
        items += [
            _sided(rng, "clip", rng.randint(*self.clip_frames), self.clip_sides, CLIP_RATIOS, patch)
            for _ in range(self.clips)
        ]
        canvases = [rng.randint(*self.codec_canvases) for _ in range(self.codecs)]
        items += [Item("codec", k, self.canvas, self.canvas) for k in canvases]
        rng.shuffle(items)
        return items

    def items(self, seed: int, dtype: torch.dtype, patch: int = 14, device: str = "cpu") -> list[Inputs]:
        """Seeded (pixel_values (1, 3, T, H, W), patch_positions (1, L, 3)) per item, in arrival order."""
        shapes = self.shapes(seed, patch)
        return [make_inputs(item, seed * 1000 + i, dtype, patch, device) for i, item in enumerate(shapes)]


def _sided(
    rng: random.Random, source: str, frames: int, sides: tuple[int, int], ratios: Sequence[tuple[int, int]], patch: int
) -> Item:
    """An item whose longer side is at most sides[1] and shorter side at least sides[0], at one of `ratios`."""
    a, b = rng.choice(ratios)
    long_over_short = max(a, b) / min(a, b)
    lo, hi = sides[0] // patch, sides[1] // patch  # in patches
    short = rng.randint(lo, max(lo, int(hi / long_over_short)))
    long = min(hi, max(short, round(short * long_over_short)))
    height, width = (long, short) if a < b else (short, long)
    return Item(source, frames, height * patch, width * patch)


def make_inputs(item: Item, seed: int, dtype: torch.dtype, patch: int, device: str = "cpu") -> Inputs:
    g = torch.Generator().manual_seed(seed)
    if item.source == "codec":
        hp = item.height // patch
        sources = 4 * item.frames  # the selection keeps a quarter of the patches of 4K frames
        frames = torch.randn(1, 3, sources, item.height, item.width, generator=g)
        scores = torch.rand(1, sources, hp, hp, generator=g)
        mask = top_patches(scores, item.frames * hp * hp)
        index = frame_timeline(sources, TIMELINE) if sources <= TIMELINE else None
        pv, pos = codec_pack(frames, mask, (hp, hp), frame_index=index, patch=patch)
    else:
        pv = torch.randn(1, 3, item.frames, item.height, item.width, generator=g)
        pos = image_positions(pv, patch) if item.frames == 1 else video_positions(pv, TIMELINE, patch=patch)
    return pv.to(device=device, dtype=dtype), pos.to(device)


MIXES = {
    m.name: m
    for m in (
        # The mix (for a GPU, `packed-any`): 48 items, images 224-896 px a side, clips of 1-16 frames at
        # 224-448, codec selections of 1-8 canvases of 448² (~150k tokens in all).
        Mix("mix", "the issue's mix (GPU): images 224-896 px at 7 aspect ratios, clips of 1-16 frames at 224-448, "
            "codec selections of 1-8 canvases of 448²", 24, (224, 896), 16, (1, 16), (224, 448), 8, (1, 8), 448),
        # The same composition (3 images : 2 clips : 1 codec selection) scaled for a 2-core CPU at full size: sides
        # halved, frames and canvases quartered, 12 items (~4.5k tokens, ~2.9 TFLOP a pass in fp32).
        Mix("mix-cpu", "the mix scaled for the CPU: sides halved (images 112-448, clips 112-224), frames and codec "
            "canvases quartered (clips of 1-4 frames, 1-2 canvases of 224²), 12 items", 6, (112, 448), 4, (1, 4),
            (112, 224), 2, (1, 2), 224),
        # Images of 224² and smaller (112-224 px a side, 64-256 tokens) at 7 aspect ratios: where packing pays on a
        # CPU (the issue measured four 224² images as one batch at 1.20x the items/s of one at a time).
        Mix("small", "images of 224² and smaller: 112-224 px a side at 7 aspect ratios, 16 items", 16, (112, 224), 0,
            (1, 1), (112, 112), 0, (1, 1), 112),
        # CI (tiny checkpoint, the test profiles test-small / packed-test-small): 5 items.
        Mix("tiny", "CI: tiny images, one 2-frame clip, one codec canvas", 3, (28, 112), 1, (2, 2), (28, 56), 1,
            (1, 1), 28),
    )
}  # fmt: skip
CPU_MIXES = ["mix-cpu", "small"]
GPU_MIXES = ["mix"]


# -- padded to the largest ---------------------------------------------------------------------------------------
def padded_shape(shapes: Sequence[Item]) -> tuple[int, int, int]:
    """(T, H, W) a padded batch of these items takes: the largest of each."""
    return max(s.frames for s in shapes), max(s.height for s in shapes), max(s.width for s in shapes)


def padded_calls(shapes: Sequence[Item], patch: int, budget_tokens: int, max_batch: int) -> list[list[int]]:
    """Item indices per padded batch: shortest first, a batch grows while B x its padded tokens <= budget_tokens and
    B <= max_batch (an item over the budget alone runs alone)."""
    calls: list[list[int]] = []
    for i in sorted(range(len(shapes)), key=lambda j: (shapes[j].tokens(patch), j)):
        if calls:
            joined = [*calls[-1], i]
            t, h, w = padded_shape([shapes[j] for j in joined])
            if len(joined) <= max_batch and len(joined) * t * (h // patch) * (w // patch) <= budget_tokens:
                calls[-1].append(i)
                continue
        calls.append([i])
    return calls


def pad_batch(items: Sequence[Inputs], shapes: Sequence[Item], patch: int) -> Inputs:
    """The items as one batch padded to their largest T/H/W: zero pixels around each item (top-left), and the grid
    positions of the padded size (so every sample is a dense grid the batched artifact takes)."""
    t, h, w = padded_shape(shapes)
    first = items[0][0]
    pv = first.new_zeros(len(items), 3, t, h, w)
    for b, ((item_pv, _), s) in enumerate(zip(items, shapes, strict=True)):
        pv[b, :, : s.frames, : s.height, : s.width] = item_pv[0]
    return pv, grid_positions(len(items), t, h // patch, w // patch, device=first.device)
