"""Targets timed in ONE process, call by call in rotation (eager, A, B, eager, A, B, ...): a burst of load from other
jobs on a shared machine hits every target alike, so the ratios hold even when the absolute times drift.

    python -m benchmarks.interleaved --model DIR --precision bf16 --rounds 8 ARTIFACT...

Prints per target the median and min latency (default workload image-448-b1) and the median of the per-round
ratios to eager (each round's targets ran back to back). `make bench` stays the reference benchmark (each target
in its own process, peak memory per target); this is the tool for a close race.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES
from models.tf32 import exact_float32

from .workloads import WORKLOADS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interleaved", description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--precision", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--workload", default="image-448-b1", choices=sorted(WORKLOADS))
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]: eager, every artifact and the inputs live there")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the result as JSON here too")
    return p


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: a CUDA call returns before its kernels finish, the clock must not."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def targets(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], Any]]:
    """name -> a call of it on prepared inputs: eager first, then each artifact, all on `device`."""
    import runtime
    from models import load_model

    dtype = DTYPES[args.precision]
    model = load_model(args.model, dtype, "sdpa", device=device)
    pv, pos = WORKLOADS[args.workload].inputs(0, dtype, str(device), model.config.patch_size)
    calls: dict[str, Callable[[], Any]] = {"eager": lambda: model(pv, patch_positions=pos)}
    for path in args.artifacts:
        runner = runtime.load(path, device=device)
        prepared = runner.prepare(pv, pos)
        calls[path.name] = functools.partial(runner.run_prepared, *prepared)
    return calls


def rotate(
    calls: dict[str, Callable[[], Any]], device: torch.device, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Every target once per round, in order; seconds per call after the warm-up rounds (device work included)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode(), exact_float32():
        for i in range(warmup + rounds):
            for name, call in calls.items():
                synchronize(device)
                start = time.perf_counter()
                call()
                synchronize(device)
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
            print(f"interleaved: round {i + 1}/{warmup + rounds}", file=sys.stderr, flush=True)
    return times


def summarise(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, ts in times.items():
        ratios = [e / t for e, t in zip(times["eager"], ts, strict=True)]
        rows.append(
            {"target": name, "median_s": statistics.median(ts), "min_s": min(ts), "x_eager": statistics.median(ratios),
             "times_s": ts}
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible to torch", file=sys.stderr)
        return 2
    rows = summarise(rotate(targets(args, device), device, args.rounds, args.warmup))
    print("| target | median ms | min ms | x eager (median of per-round ratios) |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {1e3 * r['median_s']:.0f} | {1e3 * r['min_s']:.0f} | {r['x_eager']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
