"""Real inputs: image files, video files and codec-style patch selections -> (pixel_values, patch_positions).

Everything the model sees goes through the checkpoint's own `preprocessor_config.json`, read by transformers'
`AutoImageProcessor` (the published one is a `CLIPImageProcessor`: bicubic resize of the shortest edge to 448,
centre crop 448, rescale 1/255, CLIP mean/std). Nothing here resizes or normalises pixels by hand: the modes below
only choose the processor's `size` / `crop_size` / `do_center_crop` arguments.

Images (`image_inputs`) -> pixel_values (1, 3, 1, H, W) float32 and grid positions (1, H/14 * W/14, 3), t = 0.

- mode "crop" (default): the processor exactly as configured (448 x 448 -> 1024 tokens). `size=S` overrides the
  shortest edge and the crop together (S a multiple of 14; e.g. 224 for the video-16x224 artifacts). An image
  smaller than the crop is upscaled by the processor, as CLIP does (a 10 x 10 image becomes 448 x 448).
- mode "native": no crop. Each side is resized to the nearest multiple of 14 (round half up), so the aspect ratio
  and (almost) the resolution are kept; `max_tokens` (and `max_height`/`max_width`, in pixels) cap the grid by
  shrinking both sides by one factor. The resize itself is the processor's (`size={"height", "width"}`,
  `do_center_crop=False`). An image with a side under 14 px would be less than one patch: refused (MediaError),
  native mode never upscales a whole patch out of nothing; use mode "crop" for such images.

Colour: the processor's own `do_convert_rgb` is always on (the model needs 3 channels), so grayscale (L), palette
(P), CMYK and the like are converted to RGB by Pillow, and RGBA / LA / transparent palette images are alpha-composited
onto white (transformers' `convert_to_rgb`). EXIF orientation is applied first (`ImageOps.exif_transpose`), so phone
photos are upright.

Videos (`video_inputs`) are decoded with PyAV. `num_frames` frames are sampled uniformly over the whole clip, both
ends included (frame indices round(linspace(0, n - 1, num_frames))); each frame goes through the processor (crop or
native, as for images); the clip is laid out (1, 3, T, H, W) and the T frames are spread over the model's temporal
timeline of `timeline` = rope_temporal_size = 64 slots with `runtime.positions.frame_timeline` (first frame t = 0,
last t = 63). A clip with fewer than `num_frames` decodable frames is refused, never padded or repeated.

Why PyAV and not decord: PyAV (`av` on PyPI) is maintained and ships wheels that carry their own FFmpeg (libavcodec,
libavformat, libswscale, plus libx264/libvpx/dav1d ...), as abi3 manylinux_2_28 wheels (x86_64 and aarch64), macOS
and Windows wheels: `av==18.1.0` is a cp311-abi3 wheel, so one wheel serves Python 3.11, 3.12 and later; (`av` 19
needs Python >= 3.12). decord's last release is 0.6.0 of June 2021: a py3-none manylinux2010 x86_64 wheel (it does
install on Linux x86_64 under recent Pythons), a Windows amd64 wheel, macOS x86_64 wheels for CPython 3.6-3.8 only,
no Linux aarch64 or Apple-silicon wheel and no sdist; it bundles a 2021 FFmpeg and is unmaintained. (Checked with
pip and the PyPI JSON API while writing this module.)

Codec-style selection (`codec_inputs`): the encoder sees only the informative patches of many frames. F frames are
sampled and preprocessed as above (crop mode), every 14 x 14 patch gets a score, the `budget` best patches are kept
(`runtime.positions.top_patches`) and packed into canvases (`runtime.positions.codec_pack`) that keep each patch's
original [t, h, w] on the timeline. The default score (`residual_scores`) is a cheap stand-in for a codec's residual:
each patch's mean squared difference against the same patch of the previous sampled frame (in normalised pixel
values). The first frame has no previous frame; like a codec's I-frame (and the upstream codec pipeline, which keeps
the first frame of each group whole) it is kept whole by default (`keyframe=True`: score +inf); with
`keyframe=False` it is scored against the next frame instead. Scores (F, Hp, Wp) or a precomputed list of [t, h, w]
(t = index of the sampled frame, h/w = patch row/column) may be given instead.

Bad media: every failure is one `MediaError` line (a `models.errors.InputError`): missing or unreadable files, files
that are neither images nor videos, videos without a video stream or without decodable frames, clips shorter than the
frames asked for, native-mode images under one patch, budgets that do not fill whole canvases.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers import AutoImageProcessor

from models.errors import InputError

from .positions import PATCH, TIMELINE, codec_pack, frame_timeline, image_positions, top_patches, video_positions

MODES = ("crop", "native", "codec")
PREPROCESSOR_FILE = "preprocessor_config.json"


class MediaError(InputError):
    """A media file cannot become model inputs; the message (one line) names the file and what is wrong."""


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


# -- processor ----------------------------------------------------------------------------------------------------


def load_processor(checkpoint_dir: str | os.PathLike[str]) -> Any:
    """The image processor of a checkpoint directory, from its `preprocessor_config.json` (AutoImageProcessor)."""
    root = Path(checkpoint_dir)
    if not (root / PREPROCESSOR_FILE).is_file():
        raise MediaError(f"{root}: no {PREPROCESSOR_FILE} (the checkpoint's image processor settings)")
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


def _check_size(size: int, patch: int) -> None:
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
            _check_size(size, PATCH)
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


# -- images -------------------------------------------------------------------------------------------------------


def _require_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if not p.is_file():
        raise MediaError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: empty file (0 bytes)")
    return p


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file (EXIF orientation applied); MediaError if it is not a readable image."""
    p = _require_file(path)
    try:
        with Image.open(p) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            return upright if upright is not img else img.copy()
    except UnidentifiedImageError:
        raise MediaError(f"{p}: not an image Pillow can read (unknown or damaged format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
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
    """One image -> (1, 3, 1, H, W) pixel values and its grid positions (see the module docstring for the modes)."""
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


# -- videos -------------------------------------------------------------------------------------------------------


def _av_reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


def _open_video(path: Path) -> Any:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: not a readable video or image ({_av_reason(exc)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise MediaError(f"{path}: no video stream (streams: {', '.join(kinds)})")
    return container


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of video frames, counted by demuxing packets (no decoding); 0 for a video stream without frames."""
    p = _require_file(path)
    container = _open_video(p)
    try:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as exc:
        raise MediaError(f"{p}: damaged video ({_av_reason(exc)})") from None
    finally:
        container.close()


def sample_indices(total: int, num_frames: int) -> list[int]:
    """`num_frames` distinct frame indices spread uniformly over [0, total - 1], both ends included."""
    if num_frames < 1:
        raise MediaError(f"frames must be >= 1, got {num_frames}")
    if num_frames > total:
        raise MediaError(f"the clip has {total} frame(s), fewer than the {num_frames} asked for")
    return [int(i) for i in np.round(np.linspace(0, total - 1, num_frames)).astype(np.int64)]


def read_video(path: str | os.PathLike[str], num_frames: int | None) -> tuple[list[Image.Image], list[int], int]:
    """Decode `num_frames` uniformly sampled frames (all frames if None) -> (RGB images, frame indices, total)."""
    p = _require_file(path)
    total = count_frames(p)
    if total == 0:
        raise MediaError(f"{p}: the video stream has no frames")
    if num_frames is not None and num_frames > total:
        raise MediaError(
            f"{p}: the clip has {total} frame(s), fewer than the {num_frames} asked for (ask for at most {total})"
        )
    indices = sample_indices(total, total if num_frames is None else num_frames)
    wanted = {index: slot for slot, index in enumerate(indices)}
    frames: list[Image.Image | None] = [None] * len(indices)
    container = _open_video(p)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frames[wanted[index]] = frame.to_image()  # RGB24 via libswscale
            if index >= indices[-1]:
                break
    except av.FFmpegError as exc:
        raise MediaError(f"{p}: damaged video ({_av_reason(exc)})") from None
    finally:
        container.close()
    missing = [indices[i] for i, f in enumerate(frames) if f is None]
    if missing:
        raise MediaError(f"{p}: {len(missing)} of the sampled frames could not be decoded (e.g. frame {missing[0]})")
    return [f for f in frames if f is not None], indices, total


def _frame_pixels(
    images: Sequence[Image.Image],
    processor: Any,
    mode: str,
    size: int | None,
    max_tokens: int | None,
    max_height: int | None,
    max_width: int | None,
) -> torch.Tensor:
    """Preprocess decoded frames -> (1, 3, T, H, W); in native mode every frame gets the first frame's size."""
    target = None
    if mode == "native":
        width, height = images[0].size
        target = native_size(height, width, max_tokens=max_tokens, max_height=max_height, max_width=max_width)
    pixels = preprocess(images, processor, mode=mode, size=size, target=target)
    return pixels.permute(1, 0, 2, 3).unsqueeze(0).contiguous()


def video_inputs(
    path: str | os.PathLike[str],
    processor: Any,
    num_frames: int = 4,
    *,
    mode: str = "crop",
    size: int | None = None,
    timeline: int = TIMELINE,
    max_tokens: int | None = None,
    max_height: int | None = None,
    max_width: int | None = None,
) -> MediaInputs:
    """A video file -> (1, 3, T, H, W) pixel values of `num_frames` sampled frames, positions on the timeline.

    `max_tokens` (native mode) caps the tokens of one frame.
    """
    if mode not in ("crop", "native"):
        raise MediaError(f"video_inputs: mode must be 'crop' or 'native', got {mode!r} (codec: codec_inputs)")
    if not 1 <= num_frames <= timeline:
        raise MediaError(f"frames must be in [1, {timeline}] (the model's temporal timeline), got {num_frames}")
    images, indices, total = read_video(path, num_frames)
    pixels = _frame_pixels(images, processor, mode, size, max_tokens, max_height, max_width)
    t = frame_timeline(num_frames, timeline)
    positions = video_positions(pixels, frame_index=t)
    details = {
        "frame_indices": indices,
        "total_frames": total,
        "timeline": t.tolist(),
        "original_size": list(images[0].size),
    }
    return MediaInputs(pixels, positions, "video", mode, str(path), details)


# -- codec-style selection ----------------------------------------------------------------------------------------


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


def selection_mask(
    selection: torch.Tensor | np.ndarray | Sequence[Sequence[int]], shape: tuple[int, ...]
) -> torch.Tensor:
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
    p = _require_file(path)
    try:
        if p.suffix == ".npy":
            return np.asarray(np.load(p, allow_pickle=False), dtype=np.int64)
        return np.asarray(json.loads(p.read_text()), dtype=np.int64)
    except (ValueError, OSError, TypeError) as exc:
        raise MediaError(f"{p}: cannot read [t, h, w] rows ({exc})") from None


def codec_inputs(
    path: str | os.PathLike[str],
    processor: Any,
    *,
    num_frames: int | None = None,
    canvases: int | None = None,
    size: int | None = None,
    scores: torch.Tensor | np.ndarray | None = None,
    selection: torch.Tensor | np.ndarray | Sequence[Sequence[int]] | None = None,
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
    p = _require_file(path)
    if num_frames is None:
        total = count_frames(p)
        if total == 0:
            raise MediaError(f"{p}: the video stream has no frames")
        num_frames = min(total, timeline)
    if not 1 <= num_frames <= timeline:
        raise MediaError(f"frames must be in [1, {timeline}] (the model's temporal timeline), got {num_frames}")
    images, indices, total = read_video(p, num_frames)
    frames = _frame_pixels(images, processor, "crop", size, None, None, None)  # (1, 3, F, H, W)
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
            score = torch.as_tensor(np.asarray(scores, dtype=np.float64))
            if score.dim() == 3:
                score = score.unsqueeze(0)
            if tuple(score.shape) != shape:
                raise MediaError(
                    f"scores: expected shape {shape[1:]} (frames, patch rows, patch columns), got {tuple(score.shape)}"
                )
            if bool(torch.isnan(score).any()):
                raise MediaError("scores: NaN values")
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


# -- dispatch -----------------------------------------------------------------------------------------------------


def media_kind(path: str | os.PathLike[str]) -> str:
    """'image' for a single-frame image Pillow reads, 'video' for anything else PyAV may read (checked on use).

    A file named like an image (.jpg, .png, ...) that Pillow cannot identify is refused here, rather than handed to
    FFmpeg's image demuxers as a one-frame "video".
    """
    p = _require_file(path)
    try:
        with Image.open(p) as img:
            return "video" if getattr(img, "n_frames", 1) > 1 else "image"
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
    selection: torch.Tensor | np.ndarray | Sequence[Sequence[int]] | None = None,
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
