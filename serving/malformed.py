"""The malformed requests the load generator interleaves, each with the refusal it must get.

Each case turns a valid (pixel_values, patch_positions) into a broken one and names the words its error must hold:
the input's name and what is wrong (Triton's own checks of the config's dtypes, rank, fixed dims and max batch, or
the model's, which are `runtime.validation`'s messages). Against a packed artifact a request is one item: two samples
in one request are within Triton's max batch (the items a call) and refused by the model instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, dict[str, str]]  # pixel_values, patch_positions, wire datatypes


@dataclass(frozen=True)
class Malformed:
    name: str
    make: Callable[[np.ndarray, np.ndarray, dict[str, str], int], Arrays]  # (pv, pos, types, max_batch) -> request
    expect: tuple[str, ...]  # every one of these must appear in the error message
    any_of: tuple[str, ...] = ()  # and one of these (Triton refuses on a fixed dim where the profile is static)

    def matches(self, message: str) -> bool:
        return all(e in message for e in self.expect) and (not self.any_of or any(a in message for a in self.any_of))


def _dtype(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    return pv.astype(np.float64), pos, {**types, "pixel_values": "FP64"}


def _rank(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    return pv[:, :, 0], pos, types


def _channels(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    return np.concatenate([pv, pv[:, :1]], axis=1), pos, types


def _not_multiple(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    return pv[..., :-1], pos, types  # W - 1 is not a multiple of 14


def _tokens(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    # One row short; one too many where the request has a single token (a packed profile's 14x14 item): never empty.
    return pv, (pos[:, :-1] if pos.shape[1] > 1 else np.concatenate([pos, pos], axis=1)), types


def _negative(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    bad = pos.copy()
    bad[:, -1, 1] = -1
    return pv, bad, types


def _nan(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    bad = pv.copy()
    bad.flat[bad.size // 2] = np.nan
    return bad, pos, types


def _empty(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
    return pv[:, :, :0], pos[:, :0], types


def _oversized(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], max_batch: int) -> Arrays:
    reps = max_batch // pv.shape[0] + 1
    return np.concatenate([pv] * reps), np.concatenate([pos] * reps), types


def out_of_profile(height: int) -> Callable[[np.ndarray, np.ndarray, dict[str, str], int], Arrays]:
    """A request `height` pixels high (a multiple of 14 beyond the profile), with matching grid positions."""

    def make(pv: np.ndarray, pos: np.ndarray, types: dict[str, str], _: int) -> Arrays:
        b, c, t, _h, width = pv.shape
        h, w = height // 14, width // 14
        grid = np.stack(np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij"), -1).reshape(1, -1, 3)
        return np.zeros((b, c, t, height, width), pv.dtype), np.repeat(grid, b, 0).astype(np.int64), types

    return make


SHAPE = "unexpected shape"  # Triton's refusal of a dim the config fixes


def cases(max_height: int, packed: bool = False) -> list[Malformed]:
    """Every malformed kind; `max_height` of the profile (the out-of-profile case goes one patch beyond); `packed`: a
    packed artifact's (one item a request)."""
    oversized = (
        Malformed("two items in one request", _oversized, ("pixel_values", "an item is one sample (batch 1)"))
        if packed
        else Malformed("oversized batch", _oversized, ("batch-size must be <=",))
    )
    return [
        Malformed("wrong dtype", _dtype, ("pixel_values", "FP64", "FP32")),
        Malformed("wrong rank", _rank, ("pixel_values", SHAPE, "Expected")),
        Malformed("4 channels", _channels, ("pixel_values", SHAPE, "Expected")),
        Malformed("W not multiple of 14", _not_multiple, ("pixel_values",), ("multiples of 14", SHAPE)),
        Malformed("L mismatch", _tokens, ("patch_positions",), ("expected L =", SHAPE)),
        Malformed("negative position", _negative, ("patch_positions", "non-negative", "minimum -1")),
        Malformed("NaN pixel", _nan, ("pixel_values", "finite", "1 NaN")),
        Malformed("out of profile", out_of_profile(max_height + 14), ("pixel_values",), ("outside", SHAPE)),
        Malformed("empty", _empty, (), ("pixel_values: expected a non-empty", SHAPE)),
        oversized,
    ]
