"""Image files -> pixel_values (1, 3, 1, H, W) float32 and grid positions (1, H/14 * W/14, 3), t = 0.

Pillow opens and fully decodes the file, EXIF orientation is applied first (`ImageOps.exif_transpose`, so phone
photos are upright), then the checkpoint's processor does the rest (`processor.py`: modes crop and native, RGB
conversion with alpha composited onto white).

Why not transformers' `image_utils.load_image`: it converts with `Image.convert("RGB")` before the processor sees
the image, which drops the alpha channel instead of compositing onto white (a fully transparent red pixel comes out
red, not white: the processor's `convert_to_rgb` never gets to see the alpha); it takes `str` only (no `PathLike`);
and a path that is not a file is tried as base64, so a missing file becomes "Incorrect image source ... Incorrect
padding". It also keeps the file open lazily. `read_image` keeps the same EXIF step and leaves colour to the
processor.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ..positions import image_positions
from .inputs import ImageTooLarge, MediaError, MediaInputs, require_file
from .processor import native_size, preprocess


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file (EXIF orientation applied); MediaError if it is not a readable image."""
    p = require_file(path)
    try:
        with Image.open(p) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            return upright if upright is not img else img.copy()
    except UnidentifiedImageError:
        raise MediaError(f"{p}: not an image Pillow can read (unknown or damaged format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{p}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{p}: cannot decode image ({exc})") from None


def image_inputs(
    image: str | os.PathLike[str] | Image.Image,
    processor: Any,
    *,
    mode: str = "crop",
    size: int | None = None,
    max_tokens: int | None = None,
    max_height: int | None = None,
    max_width: int | None = None,
) -> MediaInputs:
    """One image -> (1, 3, 1, H, W) pixel values and its grid positions (modes: see `runtime.media.processor`)."""
    if mode not in ("crop", "native"):
        raise MediaError(f"mode {mode!r} does not apply to an image (use 'crop' or 'native')")
    source = "<PIL.Image>" if isinstance(image, Image.Image) else str(image)
    img = image if isinstance(image, Image.Image) else read_image(image)
    width, height = img.size
    target = None
    if mode == "native":
        target = native_size(height, width, max_tokens=max_tokens, max_height=max_height, max_width=max_width)
    pixels = preprocess([img], processor, mode=mode, size=size, target=target).unsqueeze(2)
    details = {"original_size": [width, height], "image_mode": img.mode}
    return MediaInputs(pixels, image_positions(pixels), "image", mode, source, details)
