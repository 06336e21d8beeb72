"""The shape matrix: seeded inputs (pixel_values + explicit patch_positions) for every case, fitted to a profile.

Each case has a canonical shape (e.g. one 448² image). Given an artifact's ShapeProfile it either
- runs as is, when the profile takes it;
- adapts where that is natural (a batch uses the profile's batch range, the timeline and codec cases use the
  profile's frames/size, min/max are the profile's own), noting the adaptation; or
- is skipped: "outside profile <name> (<reason>)" (e.g. a 448² image on test-small, or one token: exported graphs
  need >= 2), which is not a failure.

Packed artifacts (a PackedProfile: contract/packing.py) get the packed cases instead (`PACKED_CASES`): a
`PackedCase` is a list of items of mixed shapes, each an ordinary one-sample `CaseInput` named `<case>[i]` (its own
seed, key and references, as any case's), which the artifact runs as one list (`runner.run_packed`); every item is
judged against its own eager reference. Items are fitted to the profile's per-item frames/height/width ranges and
token budget (sizes scaled keeping the aspect ratio), dropped with a note when they cannot fit, and the case is
skipped when no item fits.

Pixel content is procedural (smooth moving sinusoids plus a little noise, CLIP-normalised), so images look like
images to the attention (neighbouring patches correlate) and every case is reproducible from its seed alone.
Inputs are saved with the report (inputs/<case>.safetensors) and `--replay` re-runs them bit for bit.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file

from contract.profiles import MIN_TOKENS, PackedProfile, Profile, Range
from models import OneVisionEncoderConfig
from models.synthetic import CLIP_MEAN, CLIP_STD
from runtime.positions import codec_pack, frame_timeline, grid_positions, top_patches

# Contexts built without a checkpoint (tests) get the published geometry: the config class's own defaults.
_PUBLISHED = OneVisionEncoderConfig()
_PUBLISHED_TIMELINE = cast(int, _PUBLISHED.rope_temporal_size)


@dataclass
class CaseInput:
    name: str
    title: str
    pixel_values: torch.Tensor  # (B, 3, T, H, W) float32
    patch_positions: torch.Tensor  # (B, L, 3) int64
    seed: int
    profile: str | None = None
    note: str = ""  # how the case was adapted to the profile, if it was

    @property
    def shape(self) -> tuple[int, int, int, int]:
        b, _, t, h, w = (int(d) for d in self.pixel_values.shape)
        return b, t, h, w

    @property
    def tokens(self) -> int:
        """B * L: the work a forward pass does (what budgets count)."""
        return int(self.patch_positions.shape[0] * self.patch_positions.shape[1])

    @property
    def shape_text(self) -> str:
        b, t, h, w = self.shape
        return f"{b}x{t}x{h}x{w}"

    @property
    def key(self) -> str:
        """Identifies the input tensors: equal keys -> identical inputs (references are cached on it)."""
        return f"{self.name}@{self.shape_text}#{self.seed}"

    def samples(self, start: int, stop: int) -> CaseInput:
        """Samples start..stop-1 of the batch as an input of their own (references computed in memory-bound chunks)."""
        pv, pos = self.pixel_values[start:stop], self.patch_positions[start:stop]
        return CaseInput(self.name, self.title, pv, pos, self.seed, self.profile, self.note)

    @property
    def file_stem(self) -> str:
        return f"{self.name}@{self.shape_text}"

    def describe(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "title": self.title,
            "shape": self.shape_text,
            "tokens": self.tokens,
            "seed": self.seed,
            "profile": self.profile,
            "note": self.note,
            "key": self.key,
        }


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass
class CaseContext:
    """What a case needs to fit itself: the artifact's profile (None: any shape; a PackedProfile: the packed cases'
    items, one sample each), its token minimum, and the checkpoint's geometry (`patch_size`, and `rope_temporal_size`
    as the timeline; see `for_config`)."""

    profile: Profile | None
    min_tokens: int = MIN_TOKENS
    base_seed: int = 0
    patch: int = _PUBLISHED.patch_size
    timeline: int = _PUBLISHED_TIMELINE  # slots of the timeline/codec cases: t in [0, timeline - 1]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def for_config(
        cls, config: OneVisionEncoderConfig, profile: Profile | None, min_tokens: int = MIN_TOKENS, seed: int = 0
    ) -> CaseContext:
        """A context with the checkpoint's own patch size and timeline (`rope_temporal_size`; a config without one
        bounds no timeline, and the cases keep the published length)."""
        timeline = config.rope_temporal_size or _PUBLISHED_TIMELINE
        return cls(profile, min_tokens, seed, patch=config.patch_size, timeline=timeline)

    @property
    def profile_name(self) -> str:
        return self.profile.name if self.profile is not None else "none"

    @property
    def pname(self) -> str | None:
        return self.profile.name if self.profile is not None else None

    def seed(self, case: str) -> int:
        return self.base_seed * 1_000_003 + (zlib.crc32(case.encode()) & 0xFFFF)

    def start(self, name: str, b: int, t: int, h: int, w: int) -> tuple[int, torch.Generator] | Skip:
        """The Skip if (B, T, H, W) is outside the profile, else the case's seed and a generator seeded with it."""
        skip = self.outside(b, t, h, w)
        if skip is not None:
            return skip
        seed = self.seed(name)
        return seed, torch.Generator().manual_seed(seed)

    def profile_shape(self, frames: int) -> tuple[int, int, int, int]:
        """(B, T, H, W): the profile's smallest batch at its opt frames and size; without a profile, one 448²
        sample of `frames` frames."""
        p = self.profile
        if p is None:
            return 1, frames, 448, 448
        if isinstance(p, PackedProfile):
            return 1, p.frames.opt, p.height.opt, p.width.opt
        return p.batch.min, p.frames.opt, p.height.opt, p.width.opt

    def outside(self, b: int, t: int, h: int, w: int) -> Skip | None:
        """A Skip naming why (B, T, H, W) cannot run on this profile, or None if it can."""
        reasons = []
        if isinstance(self.profile, PackedProfile):  # one item of a packed call
            tag = f" outside profile {self.profile.name!r} range"
            batch = [] if b == 1 else [f"batch {b}: a packed item is one sample"]
            reasons = batch + [v.replace(tag, " not in") for v in self.profile.item_violations(t, h, w)]
        elif self.profile is not None:
            tag = f" outside profile {self.profile.name!r} range"
            reasons = [v.replace(tag, " not in") for v in self.profile.violations(b, t, h, w)]
        tokens = t * (h // self.patch) * (w // self.patch)
        if tokens < self.min_tokens:
            reasons.append(f"{tokens} token(s): exported graphs need >= {self.min_tokens} tokens")
        if not reasons:
            return None
        return Skip(f"outside profile {self.profile_name} ({'; '.join(reasons)})")

    @property
    def packed(self) -> bool:
        return isinstance(self.profile, PackedProfile)

    def fit(self, axis: str, want: int) -> int:
        """`want` clamped into the profile's range for an axis (unchanged without a profile, or for a packed profile's
        batch: an item is one sample)."""
        if self.profile is None:
            return want
        if axis == "batch" and isinstance(self.profile, PackedProfile):
            return 1
        r: Range = getattr(self.profile, axis)
        return min(max(want, r.min), r.max)

    def range(self, axis: str) -> Range | None:
        if axis == "batch" and isinstance(self.profile, PackedProfile):
            return Range(1, 1, 1)
        return getattr(self.profile, axis) if self.profile is not None else None

    def fit_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) in pixels scaled into the profile's ranges keeping the aspect ratio as far as the ranges
        allow (down to fit the maxima, up to reach the minima), then snapped to the patch and clamped."""
        hr, wr = self.range("height"), self.range("width")
        if hr is None or wr is None:
            return height, width
        scale = min(1.0, hr.max / height, wr.max / width)
        scale = max(scale, hr.min / height, wr.min / width)

        def snap(value: int, r: Range) -> int:
            return min(max(round(value * scale / self.patch) * self.patch, r.min), r.max)

        return snap(height, hr), snap(width, wr)


# --- procedural content -------------------------------------------------------------------------------------------


def render(
    gen: torch.Generator, batch: int, frames: int, height: int, width: int, frame_index: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 3, T, H, W) CLIP-normalised float32 pixels: smooth moving sinusoids (per sample and channel) + noise."""
    t = (frame_index if frame_index is not None else torch.arange(frames)).to(torch.float32).view(1, frames, 1, 1)
    y = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)
    x = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)
    out = torch.empty(batch, 3, frames, height, width)
    waves = 5
    for b in range(batch):
        freq = torch.rand(3, waves, generator=gen) * 0.25 + 0.01  # rad/pixel: periods of ~25..600 px
        angle = torch.rand(3, waves, generator=gen) * 2 * math.pi
        phase = torch.rand(3, waves, generator=gen) * 2 * math.pi
        speed = (torch.rand(3, waves, generator=gen) - 0.5) * 6.0  # pixels per frame
        amp = torch.rand(3, waves, generator=gen) * 0.2 + 0.05
        base = torch.rand(3, generator=gen) * 0.4 + 0.3
        for c in range(3):
            acc = torch.full((frames, height, width), float(base[c]))
            for k in range(waves):
                fx, fy = float(freq[c, k] * math.cos(angle[c, k])), float(freq[c, k] * math.sin(angle[c, k]))
                arg = fx * (x - float(speed[c, k]) * t) + fy * y + float(phase[c, k])
                acc += float(amp[c, k]) * torch.sin(arg)[0]
            out[b, c] = acc
    out += 0.03 * torch.randn(out.shape, generator=gen)
    out = out.clamp(0.0, 1.0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1, 1)
    return ((out - mean) / std).contiguous()


def _grid_input(
    name: str, title: str, ctx: CaseContext, b: int, t: int, h: int, w: int, note: str = ""
) -> CaseInput | Skip:
    started = ctx.start(name, b, t, h, w)
    if isinstance(started, Skip):
        return started
    seed, gen = started
    pv = render(gen, b, t, h, w)
    pos = grid_positions(b, t, h // ctx.patch, w // ctx.patch)
    return CaseInput(name, title, pv, pos, seed, ctx.pname, note)


def _adapted(what: list[str]) -> str:
    return "adapted to the profile: " + ", ".join(what) if what else ""


# --- the cases ----------------------------------------------------------------------------------------------------


def case_image_448(ctx: CaseContext) -> CaseInput | Skip:
    return _grid_input("image-448", "single 448² image", ctx, ctx.fit("batch", 1), 1, 448, 448)


def case_image_nonsquare(ctx: CaseContext) -> CaseInput | Skip:
    name, title = "image-nonsquare", "non-square image (H != W)"
    b = ctx.fit("batch", 1)
    h, w = ctx.fit("height", 448), ctx.fit("width", 672)
    notes = []
    if h == w:  # the profile clamped both to the same value: look for any other width (or height) it takes
        wr, hr = ctx.range("width"), ctx.range("height")
        other_h = [v for v in (hr.opt, hr.min) if v != w] if hr else []
        other_w = [v for v in (wr.max, wr.min) if v != h] if wr else []
        if other_h:
            h = other_h[0]
        elif other_w:
            w = other_w[0]
        else:
            return Skip(f"outside profile {ctx.profile_name} (height and width are both fixed at {h}: no H != W)")
    if (h, w) != (448, 672):
        notes.append(f"{h}x{w} instead of 448x672")
    return _grid_input(name, title, ctx, b, 1, h, w, _adapted(notes))


def case_image_batch(ctx: CaseContext) -> CaseInput | Skip:
    name, title = "image-batch", "batch of different images"
    b = ctx.fit("batch", 4)
    if b < 2:
        r = ctx.range("batch")
        return Skip(f"outside profile {ctx.profile_name} (batch range [{r.min if r else 1}, {b}]: no batch of >= 2)")
    h, w = ctx.fit("height", 448), ctx.fit("width", 448)
    notes = [f"batch {b}"] if b != 4 else []
    if (h, w) != (448, 448):
        notes.append(f"{h}x{w} images")
    return _grid_input(name, f"{title} ({b})", ctx, b, 1, h, w, _adapted(notes))


def case_one_patch(ctx: CaseContext) -> CaseInput | Skip:
    return _grid_input("one-patch", "one 14x14 patch (1 token)", ctx, ctx.fit("batch", 1), 1, 14, 14)


def case_video_4x448(ctx: CaseContext) -> CaseInput | Skip:
    return _grid_input("video-4x448", "4-frame 448² video", ctx, ctx.fit("batch", 1), 4, 448, 448)


def case_video_16x224(ctx: CaseContext) -> CaseInput | Skip:
    return _grid_input("video-16x224", "16-frame 224² video", ctx, ctx.fit("batch", 1), 16, 224, 224)


def case_timeline_64(ctx: CaseContext) -> CaseInput | Skip:
    name = "timeline-64"
    b, t, h, w = ctx.fit("batch", 1), ctx.fit("frames", 8), ctx.fit("height", 224), ctx.fit("width", 224)
    if t < 2:
        return Skip(f"outside profile {ctx.profile_name} (frames range allows {t}: a timeline needs >= 2 frames)")
    started = ctx.start(name, b, t, h, w)
    if isinstance(started, Skip):
        return started
    seed, gen = started
    index = frame_timeline(t, ctx.timeline)
    pv = render(gen, b, t, h, w, frame_index=index)
    pos = grid_positions(b, t, h // ctx.patch, w // ctx.patch, frame_index=index)
    notes = [f"{t} frames of {h}x{w}"] if (t, h, w) != (8, 224, 224) else []
    t_list = " ".join(str(int(v)) for v in index)
    title = f"{t} frames mapped onto the {ctx.timeline}-frame timeline: t = {t_list}"
    return CaseInput(name, title, pv, pos, seed, ctx.pname, _adapted(notes))


def case_random_positions(ctx: CaseContext) -> CaseInput | Skip:
    name, title = "random-positions", "random explicit [t, h, w] positions (not a grid)"
    b, t, h, w = ctx.profile_shape(frames=1)
    started = ctx.start(name, b, t, h, w)
    if isinstance(started, Skip):
        return started
    seed, gen = started
    pv = render(gen, b, t, h, w)
    n = t * (h // ctx.patch) * (w // ctx.patch)
    hmax, wmax = max(2 * (h // ctx.patch), 8), max(2 * (w // ctx.patch), 8)
    pos = torch.stack(
        (
            torch.randint(0, ctx.timeline, (b, n), generator=gen),
            torch.randint(0, hmax, (b, n), generator=gen),
            torch.randint(0, wmax, (b, n), generator=gen),
        ),
        dim=-1,
    )
    detail = f"t in [0, {ctx.timeline - 1}], h in [0, {hmax - 1}], w in [0, {wmax - 1}]"
    return CaseInput(name, f"{title}: {detail}", pv, pos.contiguous(), seed, ctx.pname, "")


def _codec_selection(
    gen: torch.Generator, ctx: CaseContext, b: int, k: int, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A codec-style selection of k canvases of h x w from a clip of `ctx.timeline` frames: (pixel_values,
    positions, the largest t used)."""
    hp, wp = h // ctx.patch, w // ctx.patch
    frames = render(gen, b, ctx.timeline, h, w)  # the source clip: one frame per timeline slot
    # Codec-style scores: residual energy of each patch against the previous frame (the first frame: its own
    # energy), plus a little noise so the selection spreads; the best patch of the last frame is always kept.
    resid = torch.cat((frames[:, :, :1], frames[:, :, 1:] - frames[:, :, :-1]), dim=2)
    energy = resid.pow(2).reshape(b, 3, ctx.timeline, hp, ctx.patch, wp, ctx.patch).sum(dim=(1, 4, 6))
    scores = energy * (1.0 + 0.5 * torch.rand(energy.shape, generator=gen))
    last = scores[:, -1].reshape(b, -1).argmax(dim=1)
    for i in range(b):
        scores[i, -1, int(last[i]) // wp, int(last[i]) % wp] = math.inf
    mask = top_patches(scores, k * hp * wp)
    pv, pos = codec_pack(frames, mask, (hp, wp))
    return pv.contiguous(), pos.contiguous(), int(pos[..., 0].max())


def _codec_title(ctx: CaseContext, k: int, h: int, w: int, used: int) -> str:
    hp, wp = h // ctx.patch, w // ctx.patch
    return (
        f"codec-style selection: {k * hp * wp} of {ctx.timeline * hp * wp} patches of a {ctx.timeline}-frame clip "
        f"packed into {k} canvas(es) of {h}x{w}, t up to {used}"
    )


def case_codec_packed(ctx: CaseContext) -> CaseInput | Skip:
    name = "codec-packed"
    b, k, h, w = ctx.profile_shape(frames=2)  # k canvases
    started = ctx.start(name, b, k, h, w)
    if isinstance(started, Skip):
        return started
    seed, gen = started
    pv, pos, used = _codec_selection(gen, ctx, b, k, h, w)
    return CaseInput(name, _codec_title(ctx, k, h, w, used), pv, pos, seed, ctx.pname, "")


def _profile_corner(name: str, which: str, ctx: CaseContext) -> CaseInput | Skip:
    p = ctx.profile
    if p is None:
        return Skip("no profile: the eager model has no shape range")
    b, t, h, w = (getattr(getattr(p, axis), which) for axis in ("batch", "frames", "height", "width"))
    notes = []
    if t * (h // ctx.patch) * (w // ctx.patch) < ctx.min_tokens:
        w = min(w + ctx.patch, p.width.max)
        notes.append(f"widened to {w} for >= {ctx.min_tokens} tokens")
    return _grid_input(name, f"the profile's {which} shape", ctx, b, t, h, w, _adapted(notes))


def case_profile_min(ctx: CaseContext) -> CaseInput | Skip:
    return _profile_corner("profile-min", "min", ctx)


def case_profile_max(ctx: CaseContext) -> CaseInput | Skip:
    return _profile_corner("profile-max", "max", ctx)


CaseFn = Callable[[CaseContext], "CaseInput | Skip"]

CASES: dict[str, tuple[str, CaseFn]] = {
    "image-448": ("single 448² image", case_image_448),
    "image-nonsquare": ("non-square image (448x672, adapted to the profile)", case_image_nonsquare),
    "image-batch": ("batch of 4 images (the profile's batch range)", case_image_batch),
    "one-patch": ("one 14x14 patch: 1 token", case_one_patch),
    "video-4x448": ("4-frame 448² video", case_video_4x448),
    "video-16x224": ("16-frame 224² video", case_video_16x224),
    "timeline-64": ("8 frames mapped onto the 64-frame timeline (t = round(i*63/(T-1)))", case_timeline_64),
    "random-positions": ("random explicit positions, not a grid (the profile's opt shape)", case_random_positions),
    "codec-packed": ("codec-style selection from 64 frames packed into canvases (t up to 63)", case_codec_packed),
    "profile-min": ("the smallest shape of the artifact's profile", case_profile_min),
    "profile-max": ("the largest shape of the artifact's profile", case_profile_max),
}

# Full-size model on a CPU: every case costs ~50 s per 1024 tokens (golden fp64 + references + artifacts), so the
# default set is the three that cover the three position paths (grid, arbitrary, codec) at one image's cost each.
CPU_FULL_SIZE_CASES = ("image-448", "random-positions", "codec-packed")


# --- packed cases: lists of one-sample items of mixed shapes, run by packed artifacts in one list ----------------


@dataclass
class PackedCase:
    """Items of mixed shapes run as one list by a packed artifact (`runner.run_packed(items)`). Each item is an
    ordinary one-sample CaseInput named `<case>[i]`, with its own seed, key and references (computed, cached and
    memory-bounded like any case's), and is judged on its own rows."""

    name: str
    title: str
    items: list[CaseInput]
    profile: str | None = None
    note: str = ""

    @property
    def tokens(self) -> int:
        """N: the tokens of all items (what the artifact's calls take together)."""
        return sum(item.tokens for item in self.items)

    @property
    def shape_text(self) -> str:
        return f"{len(self.items)} items, {self.tokens} tokens"

    @property
    def key(self) -> str:
        """Identifies the items: equal keys -> identical inputs."""
        digest = zlib.crc32("|".join(item.key for item in self.items).encode())
        return f"{self.name}@{len(self.items)}x{self.tokens}#{digest:08x}"

    def describe(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "title": self.title,
            "packed": True,
            "items": [item.key for item in self.items],
            "tokens": self.tokens,
            "profile": self.profile,
            "note": self.note,
            "key": self.key,
        }


ITEM_NAME = re.compile(r"^(?P<case>.+)\[(?P<index>\d+)\]$")


def item_name(case: str, index: int) -> str:
    return f"{case}[{index}]"


@dataclass(frozen=True)
class ItemSpec:
    """One item of a packed case at its canonical (full-size) shape: `kind` grid (positions t = frame index),
    timeline (frames on the checkpoint's timeline) or codec (frames = canvases of a codec-style selection)."""

    what: str
    kind: str
    frames: int
    height: int
    width: int
    exact: bool = False  # the shape is the profile's own (min or max item): not scaled


def _packed_item(case: str, index: int, spec: ItemSpec, ctx: CaseContext) -> CaseInput | Skip:
    """One item fitted to the profile: frames clamped (a timeline or codec item to the timeline's length too), size
    scaled keeping the aspect ratio; a Skip when it still does not fit (e.g. over the call's token budget)."""
    t, h, w = spec.frames, spec.height, spec.width
    if not spec.exact:
        t = ctx.fit("frames", t)
        if spec.kind != "grid":
            t = min(t, ctx.timeline)
        h, w = ctx.fit_size(h, w)
    name = item_name(case, index)
    started = ctx.start(name, 1, t, h, w)
    if isinstance(started, Skip):
        return started
    seed, gen = started
    hp, wp = h // ctx.patch, w // ctx.patch
    title = f"{spec.what}: {t}x{h}x{w}"
    if spec.kind == "codec":
        pv, pos, used = _codec_selection(gen, ctx, 1, t, h, w)
        title = f"{spec.what}: {_codec_title(ctx, t, h, w, used)}"
    elif spec.kind == "timeline" and t > 1:
        frame_index = frame_timeline(t, ctx.timeline)
        pv = render(gen, 1, t, h, w, frame_index=frame_index)
        pos = grid_positions(1, t, hp, wp, frame_index=frame_index)
        title += f" on the {ctx.timeline}-frame timeline: t = {' '.join(str(int(v)) for v in frame_index)}"
    else:
        pv, pos = render(gen, 1, t, h, w), grid_positions(1, t, hp, wp)
    adapted = (t, h, w) != (spec.frames, spec.height, spec.width)
    note = _adapted([f"{t}x{h}x{w} instead of {spec.frames}x{spec.height}x{spec.width}"]) if adapted else ""
    return CaseInput(name, title, pv.contiguous(), pos.contiguous(), seed, ctx.pname, note)


def _packed_case(name: str, title: str, ctx: CaseContext, specs: list[ItemSpec], notes: list[str]) -> PackedCase | Skip:
    """The items that fit the packed profile, numbered in order; the ones that do not are dropped with a note."""
    if not isinstance(ctx.profile, PackedProfile):
        return Skip(f"a packed case: it runs on packed artifacts only (profile {ctx.profile_name} is not packed)")
    items: list[CaseInput] = []
    for spec in specs:
        built = _packed_item(name, len(items), spec, ctx)
        if isinstance(built, Skip):
            notes.append(f"{spec.what} dropped ({built.reason})")
        else:
            items.append(built)
    if not items:
        return Skip(f"outside profile {ctx.profile_name} (no item fits: {'; '.join(notes)})")
    if len(items) < 2:
        return Skip(f"outside profile {ctx.profile_name} (one item fits, a packed case needs two: {'; '.join(notes)})")
    if any(item.note for item in items):
        notes.append("item sizes scaled into its ranges (each item says how)")
    note = "adapted to the profile: " + "; ".join(notes) if notes else ""
    return PackedCase(name, title, items, ctx.pname, note)


def case_packed_mix(ctx: CaseContext) -> PackedCase | Skip:
    specs = [
        ItemSpec("square image", "grid", 1, 224, 224),
        ItemSpec("landscape image (1:2)", "grid", 1, 224, 448),
        ItemSpec("portrait image (2:1)", "grid", 1, 448, 224),
        ItemSpec("2-frame video", "timeline", 2, 224, 224),
        ItemSpec("codec selection (2 canvases)", "codec", 2, 224, 224),
    ]
    p = ctx.profile
    if isinstance(p, PackedProfile):
        specs.append(ItemSpec("the profile's smallest item", "grid", p.frames.min, p.height.min, p.width.min, True))
    title = "mixed shapes in one list: images of three aspect ratios, a video, a codec selection, the smallest item"
    return _packed_case("packed-mix", title, ctx, specs, [])


VIDEO_FRAMES = (1, 2, 4, 8, 16)


def case_packed_videos(ctx: CaseContext) -> PackedCase | Skip:
    frames: list[int] = []
    for want in VIDEO_FRAMES:
        t = min(ctx.fit("frames", want), ctx.timeline)
        if t not in frames:
            frames.append(t)
    notes = [] if frames == list(VIDEO_FRAMES) else [f"frames {', '.join(map(str, frames))} (the profile's range)"]
    specs = [ItemSpec(f"{t}-frame video", "timeline", t, 224, 224) for t in frames]
    title = f"videos of {', '.join(map(str, frames))} frames (frames on the timeline) in one list"
    return _packed_case("packed-videos", title, ctx, specs, notes)


def largest_item(p: PackedProfile) -> tuple[int, int, int]:
    """(T, H, W) of the largest item the profile allows: the most tokens within its ranges and a call's budget
    (then the most frames, then the squarest)."""
    best: tuple[int, int, int, int, int] | None = None
    for t in range(p.frames.max, p.frames.min - 1, -1):
        for h in range(p.height.max, p.height.min - 1, -p.patch):
            wp = min(p.width.max // p.patch, p.call_tokens.max // (t * (h // p.patch)))
            w = wp * p.patch
            if w < p.width.min:
                continue
            candidate = (p.item_tokens(t, h, w), t, -abs(h - w), h, w)
            best = candidate if best is None or candidate > best else best
    if best is None:
        raise ValueError(f"profile {p.name!r}: no item fits its budget of {p.call_tokens.max} tokens")
    return best[1], best[3], best[4]


def case_packed_extremes(ctx: CaseContext) -> PackedCase | Skip:
    p = ctx.profile
    if not isinstance(p, PackedProfile):
        return _packed_case("packed-extremes", "", ctx, [], [])
    t, h, w = largest_item(p)
    notes = []
    if (t, h, w) != (p.frames.max, p.height.max, p.width.max):
        notes.append(f"largest item {t}x{h}x{w} ({p.item_tokens(t, h, w)} tokens, within the call's budget of "
                     f"{p.call_tokens.max}) instead of {p.frames.max}x{p.height.max}x{p.width.max}")  # fmt: skip
    specs = [
        ItemSpec("the profile's smallest item", "grid", p.frames.min, p.height.min, p.width.min, exact=True),
        ItemSpec("the profile's largest item", "grid", t, h, w, exact=True),
    ]
    return _packed_case("packed-extremes", "the smallest and the largest item the profile allows", ctx, specs, notes)


PackedFn = Callable[[CaseContext], "PackedCase | Skip"]

PACKED_CASES: dict[str, tuple[str, PackedFn]] = {
    "packed-mix": (
        "packed: square, 1:2 and 2:1 images, a 2-frame video, a codec selection and the smallest item (~2.6k tokens)",
        case_packed_mix,
    ),
    "packed-videos": ("packed: videos of 1, 2, 4, 8 and 16 frames (224², on the timeline; ~7.9k tokens)",
                      case_packed_videos),
    "packed-extremes": ("packed: the smallest and the largest item the profile allows", case_packed_extremes),
}  # fmt: skip
# Full-size model on a CPU: packed-mix alone, ~2.6k tokens on packed-any (the largest item, 16k tokens, needs a GPU).
CPU_FULL_SIZE_PACKED_CASES = ("packed-mix",)


def is_packed_case(name: str) -> bool:
    return name in PACKED_CASES


def parse_cases(spec: str | None, default: tuple[str, ...] | None = None) -> list[str]:
    """'all' | 'cpu-quick' | comma-separated case names (batched or packed) -> case names (ValueError naming an
    unknown one). Each artifact runs the names of its kind: batched cases on batched artifacts, packed on packed."""
    if spec is None or spec in ("", "auto"):
        return list(default) if default is not None else [*CASES, *PACKED_CASES]
    if spec == "all":
        return [*CASES, *PACKED_CASES]
    if spec == "cpu-quick":
        return [*CPU_FULL_SIZE_CASES, *CPU_FULL_SIZE_PACKED_CASES]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in CASES and n not in PACKED_CASES]
    if unknown:
        known = ", ".join([*CASES, *PACKED_CASES])
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {known} (or all, cpu-quick)")
    return names


def build_case(name: str, ctx: CaseContext) -> CaseInput | Skip:
    if ctx.packed:
        return Skip(f"a batched case: packed artifacts (profile {ctx.profile_name}) run the packed cases")
    return CASES[name][1](ctx)


def build_packed_case(name: str, ctx: CaseContext) -> PackedCase | Skip:
    return PACKED_CASES[name][1](ctx)


def regroup(inputs: list[CaseInput]) -> list[CaseInput | PackedCase]:
    """Saved inputs back into cases (--replay): the items of a packed case (named `<case>[i]`, per profile) become
    one PackedCase again, in index order; every other input stays a case of its own."""
    out: list[CaseInput | PackedCase] = []
    groups: dict[tuple[str, str | None], list[tuple[int, CaseInput]]] = {}
    for case in inputs:
        m = ITEM_NAME.match(case.name)
        if m is None:
            out.append(case)
            continue
        groups.setdefault((m["case"], case.profile), []).append((int(m["index"]), case))
    for (name, profile), members in groups.items():
        items = [case for _, case in sorted(members, key=lambda m: m[0])]
        out.append(PackedCase(name, f"{name} (replayed)", items, profile, "replayed"))
    return out


def save_input(case: CaseInput, folder: Path) -> Path:
    """inputs/<case>@<shape>.safetensors with the case's description in the metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.file_stem}.safetensors"
    meta = {k: str(v) for k, v in case.describe().items() if v is not None}
    save_file(
        {"pixel_values": case.pixel_values.contiguous(), "patch_positions": case.patch_positions.contiguous()},
        str(path),
        metadata=meta,
    )
    return path


def load_input(path: Path) -> CaseInput:
    """A saved input back (what --replay runs)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    profile = meta.get("profile")
    return CaseInput(
        name=meta.get("case", path.stem.split("@")[0]),
        title=meta.get("title", ""),
        pixel_values=tensors["pixel_values"],
        patch_positions=tensors["patch_positions"],
        seed=int(meta.get("seed", -1)),
        profile=profile if profile not in (None, "None") else None,
        note=(meta.get("note", "") + " (replayed)").strip(),
    )
