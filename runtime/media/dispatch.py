"""Any media file -> MediaInputs: tell images from videos, then hand over to `images`, `video` or `codec`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..positions import TIMELINE
from .codec import codec_inputs
from .images import image_inputs
from .inputs import ImageTooLarge, MediaError, MediaInputs, require_file
from .selection import Selection
from .video import video_inputs

MODES = ("crop", "native", "codec")


def media_kind(path: str | os.PathLike[str]) -> str:
    """'image' for a single-frame image Pillow reads, 'video' for anything else PyAV may read (checked on use).

    A file named like an image (.jpg, .png, ...) that Pillow cannot identify is refused here, rather than handed to
    FFmpeg's image demuxers as a one-frame "video".
    """
    p = require_file(path)
    try:
        with Image.open(p) as img:
            return "video" if getattr(img, "n_frames", 1) > 1 else "image"
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{p}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if p.suffix.lower() in Image.registered_extensions():
            raise MediaError(f"{p}: not an image Pillow can read ({type(exc).__name__}: {exc})") from None
        return "video"


def load_inputs(
    path: str | os.PathLike[str],
    processor: Any,
    *,
    mode: str = "crop",
    num_frames: int | None = None,
    size: int | None = None,
    max_tokens: int | None = None,
    max_height: int | None = None,
    max_width: int | None = None,
    canvases: int | None = None,
    selection: Selection | None = None,
    scores: torch.Tensor | np.ndarray | None = None,
    timeline: int = TIMELINE,
) -> MediaInputs:
    """Any media file -> MediaInputs: images by `mode` crop|native, videos by crop|native (sampled frames) or codec."""
    if mode not in MODES:
        raise MediaError(f"mode must be one of {MODES}, got {mode!r}")
    kind = media_kind(path)
    if mode == "codec":
        if kind == "image":
            raise MediaError(f"{path}: codec mode needs a video, got a still image (use mode 'crop' or 'native')")
        return codec_inputs(
            path,
            processor,
            num_frames=num_frames,
            canvases=canvases,
            size=size,
            scores=scores,
            selection=selection,
            timeline=timeline,
        )
    if kind == "image":
        if num_frames not in (None, 1):
            raise MediaError(f"{path}: a still image has one frame, {num_frames} asked for")
        return image_inputs(
            path, processor, mode=mode, size=size, max_tokens=max_tokens, max_height=max_height, max_width=max_width
        )
    return video_inputs(
        path,
        processor,
        4 if num_frames is None else num_frames,
        mode=mode,
        size=size,
        timeline=timeline,
        max_tokens=max_tokens,
        max_height=max_height,
        max_width=max_width,
    )
