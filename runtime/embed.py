"""`python -m runtime embed FILE`: embed an image or video file end to end through an artifact (or eager).

    python -m runtime embed photo.jpg --artifact artifacts/onnx-fp32-image-448.onnx
    python -m runtime embed clip.mp4 --artifact artifacts/aoti-fp32-video-4x448.pt2 --frames 4
    python -m runtime embed clip.mp4 --artifact artifacts/pt2-fp32-codec-8x448.pt2 --mode codec
    python -m runtime embed photo.jpg --model checkpoints/synthetic-full --mode native --max-tokens 1024

The file becomes model inputs through `runtime.media` (the checkpoint's own image processor; PyAV for videos), runs
through `runtime.load(ARTIFACT)` or the eager model (`--model DIR`), and the features are written to a safetensors
file (`last_hidden_state` float32 (1, L, hidden) and the `patch_positions` (1, L, 3) it was computed with) whose
metadata names the source file (and its sha256), mode, shape, frames, the artifact and its sha256 (or the
checkpoint and its weights' sha256) and the checksum. The command prints the shape and a checksum: sha256 of the
float32 little-endian bytes of last_hidden_state, with its mean and std.

The image processor comes from the checkpoint directory: `--model DIR`, else `--preprocessor DIR`, else the
checkpoint the artifact was exported from (its manifest's source.checkpoint).

Artifacts have shape profiles, so with `--artifact` the defaults follow the artifact: crop mode resizes to the
processor's crop if the profile allows it, else to the largest square the profile allows (e.g. 224 for
video-16x224, 112 for test-small); native mode caps each side at the profile's max; `--frames` defaults to the
profile's opt frames when the profile takes clips; codec mode fills the profile's opt number of canvases. An input
the artifact still cannot take is refused with the runtime's one-line InputError.

The same path in code, for callers that embed many files (`corpus/`): `MediaSettings` (the media options),
`fit_to_profile(settings, processor, profile)` (the defaults above, once per artifact), `embed_inputs(path,
processor, settings)` (one file), `processor_dir` and `timeline_of` (where the processor and the timeline come from).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from contract.errors import CheckpointError, InputError, ManifestError
from contract.manifest import file_sha256
from contract.profiles import Profile

from .base import DTYPES, LoadError
from .media import (
    MODES,
    PREPROCESSOR_FILE,
    MediaError,
    MediaInputs,
    crop_size,
    load_inputs,
    load_processor,
    load_selection,
    media_kind,
)
from .media.selection import Selection


def features_checksum(features: torch.Tensor) -> str:
    """sha256 of the float32 little-endian bytes of `features` (C order)."""
    data = features.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(data.astype("<f4", copy=False).tobytes()).hexdigest()


def fit_square(size: int, profile: Profile) -> int | None:
    """`size` if a size x size frame fits the profile, else the largest square multiple of its patch that does (or
    None)."""
    low = max(profile.height.min, profile.width.min)
    high = min(profile.height.max, profile.width.max)
    if low <= size <= high:
        return size
    best = (high // profile.patch) * profile.patch
    return best if best >= low else None


def processor_dir(model: str | None, preprocessor: str | None, source: dict[str, Any]) -> Path:
    """The checkpoint directory whose image processor to use: `model`, else `preprocessor`, else the checkpoint the
    artifact was exported from (its manifest's `source`), if its preprocessor_config.json is here."""
    if model:
        return Path(model)
    if preprocessor:
        return Path(preprocessor)
    checkpoint = source.get("checkpoint")
    if checkpoint and (Path(checkpoint) / PREPROCESSOR_FILE).is_file():
        return Path(checkpoint)
    raise MediaError(
        f"the artifact's checkpoint {checkpoint!r} has no {PREPROCESSOR_FILE} here; pass --preprocessor DIR "
        "(the checkpoint directory the artifact was exported from)"
    )


def timeline_of(config: dict[str, Any]) -> int | None:
    """The checkpoint config's own `rope_temporal_size` (the manifest's copy for an artifact); None when unset (the
    media loader's default timeline then applies)."""
    value = config.get("rope_temporal_size")
    return int(value) if value else None


@dataclass(frozen=True)
class MediaSettings:
    """How one file becomes model inputs: the command's media options, fitted to an artifact by `fit_to_profile`.

    `clip_frames` (frames sampled from a video when `frames` is None, crop/native) and `default_canvases` (codec
    canvases when neither `canvases` nor a selection is given) are the profile's defaults; None leaves
    `runtime.media.load_inputs`' own.
    """

    mode: str = "crop"
    frames: int | None = None
    size: int | None = None
    max_tokens: int | None = None
    canvases: int | None = None
    max_height: int | None = None
    max_width: int | None = None
    clip_frames: int | None = None
    default_canvases: int | None = None
    timeline: int | None = None


def fit_to_profile(settings: MediaSettings, processor: Any, profile: Profile) -> tuple[MediaSettings, list[str]]:
    """`settings` with the defaults that follow the artifact's profile, and notes (one line each) on what was fitted.

    crop/codec: the processor's crop, or the largest square the profile allows; native: each side capped at the
    profile's max; videos: the profile's opt frames when it takes clips; codec: its opt number of canvases.
    """
    notes: list[str] = []
    fitted = settings
    if settings.mode in ("crop", "codec") and settings.size is None:
        wanted = crop_size(processor)[0]
        size = fit_square(wanted, profile)
        if size is not None and size != wanted:
            notes.append(f"resizing to {size}x{size} to fit the artifact's profile {profile.name!r}")
            fitted = replace(fitted, size=size)
    if settings.mode == "native":
        fitted = replace(fitted, max_height=profile.height.max, max_width=profile.width.max)
    if settings.mode != "codec" and settings.frames is None and profile.frames.max > 1:
        fitted = replace(fitted, clip_frames=profile.frames.opt)
    if settings.mode == "codec" and settings.canvases is None:
        fitted = replace(fitted, default_canvases=profile.frames.opt)
    return fitted, notes


def embed_inputs(
    path: str | os.PathLike[str],
    processor: Any,
    settings: MediaSettings,
    *,
    selection: Selection | None = None,
    scores: np.ndarray | None = None,
) -> MediaInputs:
    """The model inputs of one file under `settings` (fitted or not): what `python -m runtime embed` runs."""
    frames, canvases = settings.frames, settings.canvases
    if settings.mode != "codec" and frames is None and settings.clip_frames and media_kind(path) == "video":
        frames = settings.clip_frames
    if settings.mode == "codec" and canvases is None and selection is None:
        canvases = settings.default_canvases
    return load_inputs(
        path,
        processor,
        mode=settings.mode,
        num_frames=frames,
        size=settings.size,
        max_tokens=settings.max_tokens,
        max_height=settings.max_height,
        max_width=settings.max_width,
        canvases=canvases,
        selection=selection,
        scores=scores,
        **({"timeline": settings.timeline} if settings.timeline else {}),
    )


def make_inputs(args: argparse.Namespace, processor: Any, profile: Profile | None, timeline: int | None) -> MediaInputs:
    """The model inputs of FILE, with defaults fitted to the artifact's profile (if any)."""
    settings = MediaSettings(
        mode=args.mode,
        frames=args.frames,
        size=args.size,
        max_tokens=args.max_tokens,
        canvases=args.canvases,
        timeline=timeline,
    )
    if profile is not None:
        settings, notes = fit_to_profile(settings, processor, profile)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    selection = load_selection(args.select) if args.select else None
    scores = None
    if args.scores:
        try:
            scores = np.load(args.scores, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MediaError(f"{args.scores}: cannot read scores ({exc})") from None
    return embed_inputs(args.file, processor, settings, selection=selection, scores=scores)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    meta: dict[str, str] = {}
    if args.artifact:
        from . import load

        runner = load(args.artifact, device=args.device)
        source = dict(runner.manifest.source)
        processor = load_processor(processor_dir(args.model, args.preprocessor, source))
        inputs = make_inputs(args, processor, runner.profile, timeline_of(source.get("config") or {}))
        pixel_values = inputs.pixel_values.to(runner.dtype)  # the processor's float32, cast to the artifact's precision
        t0 = time.perf_counter()
        if runner.packed:
            features = runner.run_packed([(pixel_values, inputs.patch_positions)])[0]
        else:
            features = runner(pixel_values, inputs.patch_positions)
        elapsed = time.perf_counter() - t0
        meta.update(
            engine=f"{runner.kind} ({runner.provider})",
            artifact=str(args.artifact),
            artifact_sha256=runner.manifest.sha256,
            precision=runner.precision,
            profile=runner.profile.name,
        )
        runner.close()
    else:
        # Eager only: the runtime imports `models` (and so transformers) here, never at module level.
        from models import load_config, weights_sha256
        from models.eager import EagerRunner

        model_dir = args.model
        if model_dir is None:
            from models.synthetic import ensure_default

            model_dir = str(ensure_default("full"))
        processor = load_processor(args.preprocessor or model_dir)
        inputs = make_inputs(args, processor, None, timeline_of(load_config(model_dir).to_dict()))
        # After the media; TF32 as the process has it (exact_fp32=False), as before.
        eager = EagerRunner.load(model_dir, args.dtype, "sdpa", args.device or "cpu", exact_fp32=False)
        t0 = time.perf_counter()
        features = eager(inputs.pixel_values, inputs.patch_positions)
        elapsed = time.perf_counter() - t0
        meta.update(
            engine="eager (sdpa)",
            checkpoint=str(model_dir),
            weights_sha256=weights_sha256(model_dir),
            precision=args.dtype,
        )

    features = features.detach().to("cpu", torch.float32).contiguous()
    checksum = features_checksum(features)
    mean, std = float(features.mean()), float(features.std())
    shape = tuple(features.shape)
    meta.update(
        source=str(args.file),
        source_sha256=file_sha256(args.file),
        kind=inputs.kind,
        mode=inputs.mode,
        shape=json.dumps(list(shape)),
        pixel_values_shape=json.dumps(list(inputs.pixel_values.shape)),
        details=json.dumps(inputs.details, sort_keys=True),
        checksum_sha256=checksum,
        mean=f"{mean:.8g}",
        std=f"{std:.8g}",
    )
    if args.out:
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"last_hidden_state": features, "patch_positions": inputs.patch_positions.contiguous()}
        save_file(tensors, str(out_path), metadata=meta)

    print_summary(args, inputs, meta, (shape, mean, std), elapsed, time.perf_counter() - started)
    return 0


def print_summary(
    args: argparse.Namespace,
    inputs: MediaInputs,
    meta: dict[str, str],
    stats: tuple[tuple[int, ...], float, float],
    elapsed: float,
    total: float,
) -> None:
    """The command's report: source, inputs, frames or codec selection, engine, features (shape, mean, std), sha256."""
    shape, mean, std = stats
    frames = inputs.details.get("frame_indices")
    print(f"source      {args.file}  ({inputs.kind}, mode {inputs.mode})")
    pv_shape, pos_shape = tuple(inputs.pixel_values.shape), tuple(inputs.patch_positions.shape)
    print(f"inputs      pixel_values {pv_shape}  patch_positions {pos_shape}")
    if frames is not None:
        print(f"frames      {frames} of {inputs.details['total_frames']} -> t {inputs.details['timeline']}")
    if inputs.kind == "codec":
        d = inputs.details
        print(
            f"codec       {d['selected']} of {d['candidates']} patches ({d['scoring']}) in {d['canvases']} canvas(es)"
        )
    print(f"engine      {meta['engine']}  {meta.get('artifact') or meta.get('checkpoint')}")
    print(f"features    {shape}  mean {mean:+.6f}  std {std:.6f}")
    print(f"sha256      {meta['checksum_sha256']}")
    print(f"time        {elapsed:.2f} s run, {total:.2f} s total" + (f"  -> {args.out}" if args.out else ""))


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m runtime embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an image (anything Pillow reads) or a video (anything PyAV/FFmpeg reads)")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--artifact", help="artifact to run (.pt2, .onnx, .engine with its manifest)")
    engine.add_argument("--model", help="checkpoint directory to run eager instead (default: synthetic full-size)")
    parser.add_argument("--mode", choices=MODES, default="crop", help="crop | native | codec (videos only)")
    parser.add_argument("--frames", type=int, help="frames to sample from a video (default 4; codec: all, <= 64)")
    parser.add_argument("--size", type=int, help="crop/codec: shortest edge = crop size in px (multiple of 14)")
    parser.add_argument("--max-tokens", type=int, help="native: cap on the tokens of one image or frame")
    parser.add_argument("--canvases", type=int, help="codec: canvases to fill (default: profile opt, or frames/4)")
    parser.add_argument("--select", help="codec: [t, h, w] rows to keep (.npy or .json) instead of scoring")
    parser.add_argument("--scores", help="codec: per-patch scores (.npy of shape (frames, H/14, W/14))")
    parser.add_argument("--preprocessor", help="checkpoint directory whose preprocessor_config.json to use")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: the artifact's own; eager: cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="eager precision (default fp32)")
    parser.add_argument("--out", help="write features here (safetensors)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (InputError, CheckpointError, ManifestError, LoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
