"""Decoded items -> runner calls -> one result per item: the only place that decides how items share a call.

A packed artifact (contract/packing.py) takes items of any shape in one call: `Runner.plan_packed` decides the calls
(its budget; items of similar length together). A batched one: items of equal (T, H, W) are stacked into one call,
up to the profile's max batch, in a deterministic order (`plan_batches`: groups in order of first appearance, each cut
into chunks of at most max batch). Either way the same shard gives the same calls wherever it runs (one machine or a
Ray actor) and so bit-identical features.

An item the artifact cannot take fails alone: a call refused with the runtime's InputError is retried one item at
a time, and each item still refused becomes an error row (reason `profile`) with that InputError's text. Any other
exception in a call becomes an `internal` error row for each of its items; the run goes on.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from contract.errors import InputError
from contract.packing import unpack
from contract.profiles import ShapeProfile
from runtime import Runner

from .decode import Decoded


@dataclass
class Embedded:
    """The result for one item: features (L, hidden) on the CPU in the runner's dtype, or its error."""

    features: torch.Tensor | None = None
    call: int = -1  # which runner call of this unit computed it (-1: none)
    batch_size: int = 0  # how many items that call held
    error: str = ""
    reason: str = ""


def plan_batches(keys: Sequence[Hashable], max_batch: int) -> list[list[int]]:
    """Positions grouped by equal key (groups in order of first appearance), each group cut into chunks of at
    most `max_batch`, in order."""
    groups: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    return [members[i : i + max_batch] for members in groups.values() for i in range(0, len(members), max_batch)]


def run_call(runner: Runner, items: Sequence[Decoded]) -> torch.Tensor:
    """One runner call on items of one shape -> (len(items), L, hidden) on the CPU. A profile whose min batch is
    above len(items) (a static-batch engine) gets the first item repeated, and the extra outputs dropped."""
    pixel_values = np.stack([d.pixel_values for d in items if d.pixel_values is not None])
    positions = np.stack([d.positions for d in items if d.positions is not None])
    assert isinstance(runner.profile, ShapeProfile)
    pad = max(0, runner.profile.batch.min - len(items))
    if pad:
        pixel_values = np.concatenate([pixel_values, np.repeat(pixel_values[:1], pad, axis=0)])
        positions = np.concatenate([positions, np.repeat(positions[:1], pad, axis=0)])
    pv = torch.from_numpy(pixel_values).to(runner.dtype)  # the processor's float32, cast to the artifact's precision
    out = runner(pv, torch.from_numpy(positions))
    return out[: len(items)].detach().to("cpu")


def _embed_chunk(runner: Runner, items: Sequence[Decoded], first_call: int) -> tuple[list[Embedded], int]:
    """Results for one chunk of equal-shape items, and the number of calls it took."""
    try:
        out = run_call(runner, items)
        return [Embedded(out[i], first_call, len(items)) for i in range(len(items))], 1
    except InputError as exc:
        if len(items) == 1:
            return [Embedded(error=str(exc), reason="profile")], 1
    except Exception as exc:  # a backend failure: an error row for each item, the run goes on
        message = f"{type(exc).__name__} in a call of {len(items)} item(s): {exc}"
        return [Embedded(error=f"{d.path}: {message}", reason="internal") for d in items], 1
    results, calls = [], 1
    for item in items:  # the call was refused: find which items the artifact cannot take
        (result,), used = _embed_chunk(runner, [item], first_call + calls)
        results.append(result)
        calls += used
    return results, calls


def _embed_packed(runner: Runner, items: Sequence[Decoded], ok: list[int], results: list[Embedded]) -> None:
    """A packed artifact: every item of any shape in as few calls as its budget allows (Runner.run_packed's plan);
    an item it cannot take is an error row of its own."""
    valid: list[int] = []
    for i in ok:
        try:
            runner.plan_packed([_pair(runner, items[i])])  # checks the item alone
            valid.append(i)
        except InputError as exc:
            results[i] = Embedded(error=str(exc).removeprefix("item 0: "), reason="profile")
    if not valid:
        return
    try:
        plans = runner.plan_packed([_pair(runner, items[i]) for i in valid])
        for call, (members, inputs) in enumerate(plans):
            out = runner.run_prepared(*inputs)
            for member, features in zip(members, unpack(out, inputs[2], len(members)), strict=True):
                results[valid[member]] = Embedded(features[0].detach().to("cpu"), call, len(members))
    except Exception as exc:  # a backend failure: an error row for each item, the run goes on
        for i in valid:
            results[i] = Embedded(error=f"{items[i].path}: {type(exc).__name__}: {exc}", reason="internal")


def _pair(runner: Runner, item: Decoded) -> tuple[torch.Tensor, torch.Tensor]:
    assert item.pixel_values is not None and item.positions is not None
    pv = torch.from_numpy(item.pixel_values[None]).to(runner.dtype)  # the processor's float32, in the precision
    return pv, torch.from_numpy(item.positions[None])


def embed_items(runner: Runner, items: Sequence[Decoded]) -> list[Embedded]:
    """One Embedded per item, in order; decode errors pass through as they are."""
    results = [Embedded(error=d.error, reason=d.reason) for d in items]
    ok = [i for i, d in enumerate(items) if not d.error]
    if not isinstance(runner.profile, ShapeProfile):
        _embed_packed(runner, items, ok, results)
        return results
    calls = 0
    for chunk in plan_batches([items[i].shape for i in ok], max(1, runner.profile.batch.max)):
        members = [ok[i] for i in chunk]
        embedded, used = _embed_chunk(runner, [items[i] for i in members], calls)
        for i, result in zip(members, embedded, strict=True):
            results[i] = result
        calls += used
    return results
