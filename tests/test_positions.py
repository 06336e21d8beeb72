"""runtime.positions: dense grids (equal to the model's own grid path), the frame timeline, codec-style packing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from models import InputError, load_model
from runtime.positions import (
    codec_pack,
    frame_timeline,
    grid_positions,
    image_positions,
    top_patches,
    video_positions,
)
from tests.conftest import seeded


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> Any:
    return load_model(tiny_dir, torch.float32, "sdpa")


def encode(model: Any, pv: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(pv, **kwargs).last_hidden_state  # type: ignore[no-any-return]


def test_grid_token_order() -> None:
    grid = grid_positions(2, 2, 2, 3)
    assert grid.shape == (2, 12, 3) and grid.dtype == torch.int64
    expected = [[t, h, w] for t in range(2) for h in range(2) for w in range(3)]  # frame-major, then row-major
    assert grid[0].tolist() == expected and torch.equal(grid[0], grid[1])
    assert grid_positions(1, 3, 1, 1, frame_index=[5, 9, 12])[0, :, 0].tolist() == [5, 9, 12]


@pytest.mark.parametrize(
    "shape",
    [(1, 3, 56, 56), (2, 3, 42, 70), (1, 3, 1, 28, 56), (2, 3, 3, 28, 42), (1, 3, 64, 14, 28)],
    ids=["image", "image-nonsquare-b2", "one-frame", "video", "video-64-frames"],
)
def test_grid_equals_model_default_path(model: Any, shape: tuple[int, ...]) -> None:
    pv = seeded(*shape, seed=3)
    pos = image_positions(pv) if len(shape) == 4 or shape[2] == 1 else video_positions(pv)
    assert pos.shape == (shape[0], pv[0, 0].numel() // (14 * 14), 3)
    assert torch.equal(encode(model, pv), encode(model, pv, patch_positions=pos))


def test_frame_timeline() -> None:
    # round(linspace(0, 63, 16)) with round half up, exactly.
    assert frame_timeline(16, 64).tolist() == [0, 4, 8, 13, 17, 21, 25, 29, 34, 38, 42, 46, 50, 55, 59, 63]
    assert frame_timeline(1, 64).tolist() == [0]
    assert frame_timeline(2, 64).tolist() == [0, 63]
    assert frame_timeline(64, 64).tolist() == list(range(64))
    assert frame_timeline(3, 4).tolist() == [0, 2, 3]  # 1.5 rounds up (not to even)
    assert frame_timeline(4, 64).tolist() == [0, 21, 42, 63]
    for n in range(1, 65):
        t = frame_timeline(n, 64)
        assert t[0] == 0 and (n == 1 or t[-1] == 63) and bool((t[1:] > t[:-1]).all())
    with pytest.raises(InputError, match="num_frames <= length"):
        frame_timeline(65, 64)


def test_video_positions_on_timeline() -> None:
    pv = seeded(1, 3, 4, 28, 28)
    pos = video_positions(pv, 64)
    assert pos[0, ::4, 0].tolist() == [0, 21, 42, 63]
    assert torch.equal(pos, video_positions(pv, frame_index=[0, 21, 42, 63]))
    with pytest.raises(InputError, match="one per frame"):
        video_positions(pv, frame_index=[0, 1])
    with pytest.raises(InputError, match="use video_positions"):
        image_positions(pv)


def test_top_patches_deterministic() -> None:
    scores = torch.zeros(1, 2, 2, 2)
    scores[0, 1, 1, 0] = 5.0
    scores[0, 0, 0, 1] = 3.0
    mask = top_patches(scores, 3)
    # the two high scores, then the earliest zero-score patch (ties broken by token order)
    assert mask.flatten().nonzero().flatten().tolist() == [0, 1, 6]
    with pytest.raises(InputError, match="budget"):
        top_patches(scores, 9)


def test_codec_pack_keeps_patches_and_positions(model: Any) -> None:
    b, f, h, w = 2, 6, 42, 56  # 6 frames of 3x4 patches = 72 candidates per sample
    frames = seeded(b, 3, f, h, w, seed=9)
    scores = seeded(b, f, h // 14, w // 14, seed=10)
    mask = top_patches(scores, 2 * 2 * 3)  # K = 2 canvases of 2x3 patches
    t_index = frame_timeline(f, 64)
    packed, pos = codec_pack(frames, mask, (2, 3), frame_index=t_index)
    assert packed.shape == (b, 3, 2, 28, 42) and pos.shape == (b, 12, 3) and pos.dtype == torch.int64

    for s in range(b):
        chosen = mask[s].nonzero().tolist()  # (frame, row, col) in token order
        for i, (fi, y, x) in enumerate(chosen):
            k, r, c = i // 6, (i % 6) // 3, i % 3
            assert pos[s, i].tolist() == [int(t_index[fi]), y, x]
            original = frames[s, :, fi, 14 * y : 14 * y + 14, 14 * x : 14 * x + 14]
            assert torch.equal(packed[s, :, k, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14], original)

    # The packed canvases with their original positions encode like token selection on the full clip (the default
    # grid path, t = frame index): same tokens, same positions, attention over the same set.
    packed_default, pos_default = codec_pack(frames, mask, (2, 3))
    visible = mask.reshape(b, -1).nonzero()[:, 1].reshape(b, -1)
    selected = encode(model, frames, visible_indices=visible)
    assert torch.allclose(encode(model, packed_default, patch_positions=pos_default), selected, atol=1e-5, rtol=0)


def test_codec_pack_refusals() -> None:
    frames = seeded(1, 3, 2, 28, 28)
    with pytest.raises(InputError, match="positive multiple of hc\\*wc"):
        codec_pack(frames, top_patches(torch.ones(1, 2, 2, 2), 3), (1, 2))
    uneven = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    uneven[0, 0, 0, :2] = True
    uneven[1, 0, 0, 0] = True
    with pytest.raises(InputError, match="same number of patches"):
        codec_pack(seeded(2, 3, 2, 28, 28), uneven, (1, 1))
    with pytest.raises(InputError, match="bool tensor of shape"):
        codec_pack(frames, torch.ones(1, 2, 2, 2), (1, 1))
