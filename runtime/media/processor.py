"""The checkpoint's image processor and the bundle's resizing policy (crop size, native size, processor arguments).

Everything the model sees goes through the checkpoint's own `preprocessor_config.json`, read by transformers'
`AutoImageProcessor` (the published one is a `CLIPImageProcessor`: bicubic resize of the shortest edge to 448,
centre crop 448, rescale 1/255, CLIP mean/std). Nothing here resizes or normalises pixels by hand: the modes only
choose the processor's `size` / `crop_size` / `do_center_crop` arguments. transformers is imported inside
`load_processor`, so importing `runtime.media` does not import it.

- mode "crop" (default): the processor exactly as configured (448 x 448 -> 1024 tokens). `size=S` overrides the
  shortest edge and the crop together (S a multiple of 14; e.g. 224 for the video-16x224 artifacts). An image
  smaller than the crop is upscaled by the processor, as CLIP does (a 10 x 10 image becomes 448 x 448).
- mode "native": no crop. Each side is resized to the nearest multiple of 14 (round half up), so the aspect ratio
  and (almost) the resolution are kept; `max_tokens` (and `max_height`/`max_width`, in pixels) cap the grid by
  shrinking both sides by one factor (`native_size`). The resize itself is the processor's (`size={"height",
  "width"}`, `do_center_crop=False`). A side under 14 px would be less than one patch: refused (MediaError), native
  mode never upscales a whole patch out of nothing; use mode "crop" for such images.

Colour: the processor's own `do_convert_rgb` is always on (the model needs 3 channels), so grayscale (L), palette
(P), CMYK and the like are converted to RGB, and RGBA / LA / transparent palette images are alpha-composited onto
white (transformers' `image_transforms.convert_to_rgb`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..positions import PATCH
from .inputs import MediaError

PREPROCESSOR_FILE = "preprocessor_config.json"


def load_processor(checkpoint_dir: str | os.PathLike[str]) -> Any:
    """The image processor of a checkpoint directory, from its `preprocessor_config.json` (AutoImageProcessor)."""
    root = Path(checkpoint_dir)
    if not (root / PREPROCESSOR_FILE).is_file():
        raise MediaError(f"{root}: no {PREPROCESSOR_FILE} (the checkpoint's image processor settings)")
    from transformers import AutoImageProcessor  # lazily: runtime imports no transformers until a file is embedded

    try:
        return AutoImageProcessor.from_pretrained(str(root))
    except (OSError, ValueError, KeyError) as exc:
        raise MediaError(f"{root / PREPROCESSOR_FILE}: unusable image processor config ({exc})") from None


def crop_size(processor: Any) -> tuple[int, int]:
    """(height, width) of the processor's centre crop (the model's default input size)."""
    crop = getattr(processor, "crop_size", None)
    if crop is not None and crop.get("height") and crop.get("width"):
        return int(crop["height"]), int(crop["width"])
    size = getattr(processor, "size", None) or {}
    edge = size.get("shortest_edge") or size.get("height")
    if not edge:
        raise MediaError(
            f"the image processor has neither a crop size nor a shortest edge ({type(processor).__name__})"
        )
    return int(edge), int(size.get("width") or edge)


def check_size(size: int, patch: int = PATCH) -> None:
    """MediaError unless `size` is a positive multiple of the patch size."""
    if size < patch or size % patch:
        raise MediaError(f"size must be a positive multiple of the patch size {patch}, got {size}")


def native_size(
    height: int,
    width: int,
    *,
    patch: int = PATCH,
    max_tokens: int | None = None,
    max_height: int | None = None,
    max_width: int | None = None,
) -> tuple[int, int]:
    """Native-resolution target (H, W) in pixels: each side rounded (half up) to a multiple of `patch`.

    With caps (tokens, or pixels per side) the largest grid that fits and keeps the aspect ratio up to rounding one
    side to whole patches is used. Raises MediaError if a side is under one patch or a cap is below one patch.
    """
    if height < patch or width < patch:
        raise MediaError(
            f"image is {width}x{height} px, smaller than one {patch}x{patch} patch; native mode does not upscale "
            "(use mode 'crop', which resizes like CLIP)"
        )
    hp, wp = (height * 2 + patch) // (2 * patch), (width * 2 + patch) // (2 * patch)
    cap_hp = (max_height // patch) if max_height else None
    cap_wp = (max_width // patch) if max_width else None
    if max_tokens is not None and max_tokens < 1:
        raise MediaError(f"max_tokens must be >= 1, got {max_tokens}")
    if cap_hp == 0 or cap_wp == 0:
        raise MediaError(f"max_height/max_width must be at least one patch ({patch} px)")

    def fits(rows: int, cols: int) -> bool:
        return not (
            (max_tokens is not None and rows * cols > max_tokens)
            or (cap_hp is not None and rows > cap_hp)
            or (cap_wp is not None and cols > cap_wp)
        )

    if fits(hp, wp):
        return hp * patch, wp * patch
    # Capped: every grid that keeps the aspect ratio up to rounding one side (rows -> round(rows * w/h) columns, and
    # columns -> rows); the fitting one with the most tokens wins, then the one closest to the true aspect ratio.
    aspect = width / height
    candidates = [(r, max(1, math.floor(r * aspect + 0.5))) for r in range(1, hp + 1)]
    candidates += [(max(1, math.floor(c / aspect + 0.5)), c) for c in range(1, wp + 1)]
    fitting = [(r, c) for r, c in candidates if fits(r, c)]
    if not fitting:  # an extreme aspect ratio under tight caps: the single row or column that fits
        fitting = [(1, 1)]
    hp, wp = max(fitting, key=lambda rc: (rc[0] * rc[1], -abs(math.log(rc[1] / rc[0] / aspect))))
    return hp * patch, wp * patch


def preprocess(
    images: Sequence[Image.Image],
    processor: Any,
    *,
    mode: str = "crop",
    size: int | None = None,
    target: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Run the image processor on RGB-convertible Pillow images -> (N, 3, H, W) float32.

    mode "crop": the configured resize + centre crop, or shortest edge = crop = `size` if given.
    mode "native": resize to `target` = (H, W) pixels (see `native_size`), no crop.
    """
    kwargs: dict[str, Any] = {"do_convert_rgb": True, "return_tensors": "pt"}
    if mode == "crop":
        if size is not None:
            check_size(size)
            kwargs.update(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True)
    elif mode == "native":
        if target is None:
            raise ValueError("native mode needs target=(height, width)")
        kwargs.update(size={"height": target[0], "width": target[1]}, do_resize=True, do_center_crop=False)
    else:
        raise ValueError(f"preprocess: mode must be 'crop' or 'native', got {mode!r}")
    pixels = processor(images=list(images), **kwargs)["pixel_values"]
    if not isinstance(pixels, torch.Tensor) or pixels.dim() != 4 or pixels.shape[1] != 3:
        shape = tuple(pixels.shape) if hasattr(pixels, "shape") else type(pixels).__name__
        raise MediaError(f"the image processor returned {shape}, expected (N, 3, H, W)")
    h, w = pixels.shape[-2:]
    if h % PATCH or w % PATCH:
        raise MediaError(
            f"the image processor produced {h}x{w} px, not a multiple of the {PATCH}-px patch; "
            "pass a size that is a multiple of 14"
        )
    return pixels.to(torch.float32).contiguous()


def frames_pixels(
    images: Sequence[Image.Image],
    processor: Any,
    *,
    mode: str = "crop",
    size: int | None = None,
    max_tokens: int | None = None,
    max_height: int | None = None,
    max_width: int | None = None,
) -> torch.Tensor:
    """Preprocess decoded frames -> (1, 3, T, H, W); in native mode every frame gets the first frame's size."""
    target = None
    if mode == "native":
        width, height = images[0].size
        target = native_size(height, width, max_tokens=max_tokens, max_height=max_height, max_width=max_width)
    pixels = preprocess(images, processor, mode=mode, size=size, target=target)
    return pixels.permute(1, 0, 2, 3).unsqueeze(0).contiguous()
