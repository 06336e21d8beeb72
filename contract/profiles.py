"""Shape profiles, defined once: they feed torch.export Dims, ONNX dynamic axes, TensorRT optimisation profiles
and the runtime's input checks.

A profile gives (min, opt, max) for batch B, frames T, height H and width W (pixels, multiples of the patch size).
The token count L = T * (H/p) * (W/p) is derived; explicit positions must have exactly L rows.

A packed profile (`PackedProfile`, for packed calls: contract/packing.py) gives instead the tokens N and items B of one
call (min/opt/max) and each item's own frames/height/width ranges; `profile_from_dict` reads either from a manifest.

Every profile needs at least MIN_TOKENS = 2 tokens at its min shape: with a single token (T*h*w == 1) torch.export
specialises the patch-embedding conv to L == 1 through a guard, so an exported graph could never accept more than
one token. Use e.g. 14x28 (2 patches) or 2 frames of 14x14 as the smallest input.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any, ClassVar

from .errors import ProfileError
from .io import CHANNELS, INPUT_NAMES, PATCH, SIGNATURE

MIN_TOKENS = 2  # see the module docstring: a one-token minimum gets specialised away in exported graphs
AXES = ("batch", "frames", "height", "width")


@dataclass(frozen=True)
class Range:
    min: int
    opt: int
    max: int

    @property
    def static(self) -> bool:
        return self.min == self.max

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class ShapeProfile:
    packed: ClassVar[bool] = False
    name: str
    batch: Range
    frames: Range
    height: Range
    width: Range
    patch: int = PATCH

    def __post_init__(self) -> None:
        for axis in AXES:
            r = getattr(self, axis)
            if not (1 <= r.min <= r.opt <= r.max):
                raise ProfileError(
                    f"profile {self.name!r}: {axis} needs 1 <= min <= opt <= max, got {r.min}/{r.opt}/{r.max}"
                )
        for axis in ("height", "width"):
            r = getattr(self, axis)
            bad = [v for v in (r.min, r.opt, r.max) if v % self.patch]
            if bad:
                raise ProfileError(
                    f"profile {self.name!r}: {axis} must be a multiple of the patch size {self.patch}, got {bad[0]}"
                )
        if self.tokens("min") < MIN_TOKENS:
            raise ProfileError(
                f"profile {self.name!r}: its min shape has {self.tokens('min')} token(s) (T*(H/{self.patch})*(W/"
                f"{self.patch})), exported artifacts need >= {MIN_TOKENS}: a one-token graph gets specialised to "
                f"L == 1 by torch.export; raise the min width or height to {2 * self.patch} or the min frames to 2"
            )

    def tokens(self, which: str) -> int:
        """L at 'min', 'opt' or 'max'."""
        t, h, w = (getattr(getattr(self, axis), which) for axis in ("frames", "height", "width"))
        return int(t * (h // self.patch) * (w // self.patch))

    @property
    def token_range(self) -> Range:
        return Range(self.tokens("min"), self.tokens("opt"), self.tokens("max"))

    def shapes(self, which: str) -> dict[str, tuple[int, ...]]:
        """Input name -> concrete shape at 'min', 'opt' or 'max' (what TensorRT profiles and examples use)."""
        sizes: dict[str, int] = {axis: getattr(getattr(self, axis), which) for axis in AXES}
        sizes["tokens"] = self.tokens(which)
        return {name: tuple(a if isinstance(a, int) else sizes[a] for a in SIGNATURE[name]) for name in INPUT_NAMES}

    def violations(self, batch: int, frames: int, height: int, width: int) -> list[str]:
        """Human-readable reasons a concrete input shape lies outside this profile (empty if inside)."""
        out = []
        for axis, value in zip(AXES, (batch, frames, height, width), strict=True):
            r = getattr(self, axis)
            if not r.contains(value):
                out.append(f"{axis} {value} outside profile {self.name!r} range [{r.min}, {r.max}]")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = asdict(self.token_range)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeProfile:
        try:
            return cls(
                name=str(data.get("name", "custom")),
                patch=int(data.get("patch", PATCH)),
                **{axis: Range(**{k: int(data[axis][k]) for k in ("min", "opt", "max")}) for axis in AXES},
            )
        except (KeyError, TypeError) as exc:
            raise ProfileError(f"profile needs min/opt/max for each of {AXES}: {exc}") from None


@dataclass(frozen=True)
class PackedProfile:
    """A packed call's shapes: N tokens of B items in one sequence (contract/packing.py), each item of its own frames,
    height and width. `call_tokens` bounds N (its max is the token budget one call takes; the runtime splits longer
    lists into several calls), `call_items` bounds B; an item is (1, 3, T, H, W) with T/H/W in their ranges and at
    least one token."""

    name: str
    call_tokens: Range
    call_items: Range
    frames: Range
    height: Range
    width: Range
    patch: int = PATCH
    packed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for axis in ("call_tokens", "call_items", *AXES[1:]):
            r = getattr(self, axis)
            if not (1 <= r.min <= r.opt <= r.max):
                raise ProfileError(
                    f"profile {self.name!r}: {axis} needs 1 <= min <= opt <= max, got {r.min}/{r.opt}/{r.max}"
                )
        for axis in ("height", "width"):
            bad = [v for v in astuple(getattr(self, axis)) if v % self.patch]
            if bad:
                raise ProfileError(
                    f"profile {self.name!r}: {axis} must be a multiple of the patch size {self.patch}, got {bad[0]}"
                )
        if self.call_tokens.min < MIN_TOKENS:
            raise ProfileError(
                f"profile {self.name!r}: a call's min tokens is {self.call_tokens.min}, exported artifacts need >= "
                f"{MIN_TOKENS} (torch.export specialises a one-token graph)"
            )

    def item_tokens(self, frames: int, height: int, width: int) -> int:
        return frames * (height // self.patch) * (width // self.patch)

    def item_violations(self, frames: int, height: int, width: int) -> list[str]:
        """Why one item (1, 3, T, H, W) cannot be in a call of this profile (empty if it can)."""
        out = [
            f"{axis} {value} outside profile {self.name!r} range [{r.min}, {r.max}]"
            for axis, value in zip(AXES[1:], (frames, height, width), strict=True)
            if not (r := getattr(self, axis)).contains(value)
        ]
        tokens = self.item_tokens(frames, height, width)
        if tokens > self.call_tokens.max:
            out.append(f"{tokens} tokens over profile {self.name!r}'s budget of {self.call_tokens.max} a call")
        return out

    @property
    def token_range(self) -> Range:
        return self.call_tokens

    def shapes(self, which: str) -> dict[str, tuple[int, ...]]:
        """Input name -> the packed inputs' shapes at 'min', 'opt' or 'max' (N tokens, B items)."""
        n, b = getattr(self.call_tokens, which), getattr(self.call_items, which)
        return {
            "pixel_patches": (n * CHANNELS * self.patch * self.patch,),
            "patch_positions": (3 * n,),
            "cu_seqlens": (b + 1,),
        }

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "packed": True, "patch": self.patch}
        data["tokens"], data["items"] = asdict(self.call_tokens), asdict(self.call_items)
        return {**data, **{axis: asdict(getattr(self, axis)) for axis in AXES[1:]}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PackedProfile:
        def rng(key: str) -> Range:
            return Range(**{k: int(data[key][k]) for k in ("min", "opt", "max")})

        try:
            axes = {axis: rng(axis) for axis in AXES[1:]}
            return cls(
                str(data.get("name", "custom")),
                rng("tokens"),
                rng("items"),
                **axes,
                patch=int(data.get("patch", PATCH)),
            )
        except (KeyError, TypeError) as exc:
            raise ProfileError(
                f"a packed profile needs min/opt/max for tokens, items, frames, height, width: {exc}"
            ) from None


Profile = ShapeProfile | PackedProfile


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """A manifest's or JSON file's profile: packed (`"packed": true`) or batched."""
    return PackedProfile.from_dict(data) if data.get("packed") else ShapeProfile.from_dict(data)


def _p(
    name: str, b: tuple[int, int, int], t: tuple[int, int, int], h: tuple[int, int, int], w: tuple[int, int, int]
) -> ShapeProfile:
    return ShapeProfile(name, Range(*b), Range(*t), Range(*h), Range(*w))


PROFILES: dict[str, ShapeProfile] = {
    p.name: p
    for p in (
        # One 448² image per sample, batch 1..32 (L = 1024).
        _p("image-448", (1, 8, 32), (1, 1, 1), (448, 448, 448), (448, 448, 448)),
        # Native-resolution images, square or not, 224..896 px on each side (L = 256..4096).
        _p("image-any", (1, 1, 8), (1, 1, 1), (224, 448, 896), (224, 448, 896)),
        # 4-frame 448² video (L = 4096).
        _p("video-4x448", (1, 1, 8), (4, 4, 4), (448, 448, 448), (448, 448, 448)),
        # 16-frame 224² video (L = 4096).
        _p("video-16x224", (1, 1, 8), (16, 16, 16), (224, 224, 224), (224, 224, 224)),
        # Codec canvas set: patches of up to 64 frames packed into 8 canvases of 448² (L = 8192).
        _p("codec-8x448", (1, 1, 4), (8, 8, 8), (448, 448, 448), (448, 448, 448)),
        # Everything from two patches (14x28, the smallest exportable input) to a 4-frame 112² clip: the tests'
        # profile (tiny preset).
        _p("test-small", (1, 2, 4), (1, 2, 4), (14, 56, 112), (28, 56, 112)),
    )
}
PACKED_PROFILES: dict[str, PackedProfile] = {
    p.name: p
    for p in (
        # Native resolution at batch speed (full size): items of 224..896 px a side and 1..16 frames, up to 16,384
        # tokens and 64 items a call.
        PackedProfile("packed-any", Range(2, 4096, 16384), Range(1, 8, 64), Range(1, 1, 16), Range(224, 448, 896),
                      Range(224, 448, 896)),
        # The tests' packed profile (tiny preset): items of 14..112 px a side and 1..4 frames, up to 1,024 tokens and
        # 8 items a call.
        PackedProfile("packed-test-small", Range(2, 256, 1024), Range(1, 4, 8), Range(1, 1, 4), Range(14, 56, 112),
                      Range(14, 56, 112)),
    )
}  # fmt: skip
DEFAULT_PROFILE = "image-448"


def parse_trt_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """trtexec-style 'pixel_values:1x3x1x448x448,patch_positions:1x1024x3' -> {name: shape}."""
    shapes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, dims = part.rpartition(":")
        if not sep:
            raise ProfileError(f"expected NAME:DxDx..., got {part!r}")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ProfileError(f"bad dimensions in {part!r}") from None
    return shapes


def from_trt_shapes(min_shapes: str, opt_shapes: str, max_shapes: str, name: str = "custom") -> ShapeProfile:
    """A profile from trtexec-style --min-shapes/--opt-shapes/--max-shapes (pixel_values is B x 3 x T x H x W)."""
    triple = []
    for text in (min_shapes, opt_shapes, max_shapes):
        shapes = parse_trt_shapes(text)
        pv = shapes.get("pixel_values")
        if pv is None or len(pv) != 5:
            raise ProfileError(f"expected pixel_values:Bx3xTxHxW in {text!r}")
        triple.append(pv)
    (b0, _, t0, h0, w0), (b1, _, t1, h1, w1), (b2, _, t2, h2, w2) = triple
    return ShapeProfile(name, Range(b0, b1, b2), Range(t0, t1, t2), Range(h0, h1, h2), Range(w0, w1, w2))


def requested_profiles(
    specs: list[str], min_shapes: str | None = None, opt_shapes: str | None = None, max_shapes: str | None = None
) -> list[Profile]:
    """The profiles a command line asks for, each as export names it: every spec (a name or a JSON file, named after
    its "name" or its file's stem), then one from trtexec-style min/opt/max shapes (named "custom"); [] if none."""
    profiles = [resolve_profile(spec) for spec in specs]
    if min_shapes and opt_shapes and max_shapes:
        profiles.append(from_trt_shapes(min_shapes, opt_shapes, max_shapes))
    elif min_shapes or opt_shapes or max_shapes:
        raise ProfileError("--min-shapes, --opt-shapes and --max-shapes go together: give all three")
    return profiles


def resolve_profile(spec: str | os.PathLike[str] | Profile) -> Profile:
    """A profile by name (batched or packed), or from a JSON file holding one profile dict (`"packed": true` for a
    packed one)."""
    if isinstance(spec, ShapeProfile | PackedProfile):
        return spec
    text = str(spec)
    if text in PROFILES:
        return PROFILES[text]
    if text in PACKED_PROFILES:
        return PACKED_PROFILES[text]
    path = Path(text)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path}: not valid JSON ({exc.msg})") from None
        return profile_from_dict({"name": path.stem, **data})
    known = sorted(PROFILES) + sorted(PACKED_PROFILES)
    raise ProfileError(f"unknown profile {text!r}: use one of {known} or a JSON file")
