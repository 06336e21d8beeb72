"""One Triton `execute` call: validate each request on its own, run same-shape requests as one batch, split back.

Triton's dynamic batcher hands the model several requests at once (equal shapes only, for a batched artifact). Each
is validated by the runtime's own rules (`Runner.prepare` -> `runtime.validation.check_inputs`) before any is batched,
so a malformed request is refused with its own named error and never fails or changes the answer of the valid
requests beside it.

A packed artifact's config makes its inputs ragged, so Triton hands it requests of *different* shapes together
(serving/model_config.py); `run_packed_requests` checks each alone and packs the valid ones (`Runner.run_packed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from contract.profiles import ShapeProfile
from runtime import InputError, Runner

Result = np.ndarray | Exception


def wire_output(out: torch.Tensor) -> np.ndarray:
    """last_hidden_state as it travels: bf16 becomes float32 (exact), fp32/fp16 stay as they are."""
    if out.dtype == torch.bfloat16:
        out = out.float()
    return out.detach().cpu().numpy()


def run_requests(runner: Runner, requests: Sequence[tuple[Any, Any]]) -> list[Result]:
    """(pixel_values, patch_positions) per request -> last_hidden_state (numpy) or the exception refusing it."""
    if not isinstance(runner.profile, ShapeProfile):
        return run_packed_requests(runner, requests)
    results: list[Result | None] = [None] * len(requests)
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for i, (pixel_values, patch_positions) in enumerate(requests):
        try:
            pv, pos = runner.prepare(pixel_values, patch_positions)
        except InputError as exc:
            results[i] = exc
            continue
        groups.setdefault((tuple(pv.shape[1:]), tuple(pos.shape[1:])), []).append((i, pv, pos))
    limit = runner.profile.batch.max
    for members in groups.values():
        for chunk in _chunks(members, limit):
            try:
                out = runner(torch.cat([m[1] for m in chunk]), torch.cat([m[2] for m in chunk]))
            except Exception as exc:  # a backend failure refuses this batch's requests, loudly, never silently
                for i, _, _ in chunk:
                    results[i] = RuntimeError(f"{type(exc).__name__} in the {runner.kind} backend: {exc}")
                continue
            array = wire_output(out)
            start = 0
            for i, pv, _ in chunk:
                results[i] = array[start : start + pv.shape[0]]
                start += pv.shape[0]
    return [r if r is not None else RuntimeError("request was not processed") for r in results]


def run_packed_requests(runner: Runner, requests: Sequence[tuple[Any, Any]]) -> list[Result]:
    """A packed artifact: requests of any shapes the profile allows, each of one item (batch 1) checked on its own
    (a malformed one refused alone, by its own message), then every valid one packed into as few calls as the budget
    allows (`Runner.plan_packed`), the outputs split back per request."""
    results: list[Result | None] = [None] * len(requests)
    valid: list[tuple[int, tuple[Any, Any]]] = []
    for i, request in enumerate(requests):
        try:
            runner.plan_packed([request])  # checks the request alone
            valid.append((i, request))
        except InputError as exc:
            results[i] = InputError(str(exc).removeprefix("item 0: "))
    if valid:
        try:
            outputs = runner.run_packed([request for _, request in valid])
            for (i, _), out in zip(valid, outputs, strict=True):
                results[i] = wire_output(out)
        except Exception as exc:  # a backend failure refuses these requests, loudly, never silently
            for i, _ in valid:
                results[i] = RuntimeError(f"{type(exc).__name__} in the {runner.kind} backend: {exc}")
    return [r if r is not None else RuntimeError("request was not processed") for r in results]


def _chunks(
    members: list[tuple[int, torch.Tensor, torch.Tensor]], limit: int
) -> list[list[tuple[int, torch.Tensor, torch.Tensor]]]:
    """Consecutive groups whose total batch stays within the profile (Triton's max_batch_size already ensures it)."""
    out: list[list[tuple[int, torch.Tensor, torch.Tensor]]] = [[]]
    total = 0
    for m in members:
        if out[-1] and total + m[1].shape[0] > limit:
            out.append([])
            total = 0
        out[-1].append(m)
        total += m[1].shape[0]
    return out
