"""Targets timed in ONE process, call by call in rotation (eager, A, B, eager, A, B, ...): a burst of load from other
jobs on a shared machine hits every target alike, so the ratios hold even when the absolute times drift.

    python -m benchmarks.interleaved --model DIR --precision bf16 --rounds 8 ARTIFACT...

Prints per target the median and min latency (default workload image-448-b1) and the median of the per-round
ratios to eager (each round's targets ran back to back). `make bench` stays the reference benchmark (each target
in its own process, peak memory per target); this is the tool for a close race.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES
from models.tf32 import exact_float32

from .workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interleaved", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--precision", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--workload", default="image-448-b1", choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the result as JSON here too")
    args = parser.parse_args(argv)
    import runtime
    from models import load_model

    dtype = DTYPES[args.precision]
    model = load_model(args.model, dtype, "sdpa")
    pv, pos = WORKLOADS[args.workload].inputs(0, dtype, "cpu", model.config.patch_size)
    calls: dict[str, Any] = {"eager": lambda: model(pv, patch_positions=pos)}
    for path in args.artifacts:
        runner = runtime.load(path)
        prepared = runner.prepare(pv, pos)
        calls[path.name] = lambda r=runner, p=prepared: r.run_prepared(*p)
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode(), exact_float32():
        for i in range(args.warmup + args.rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
            print(f"interleaved: round {i + 1}/{args.warmup + args.rounds}", file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    for name, ts in times.items():
        ratios = [e / t for e, t in zip(times["eager"], ts, strict=True)]
        rows.append(
            {
                "target": name,
                "median_s": statistics.median(ts),
                "min_s": min(ts),
                "x_eager": statistics.median(ratios),
                "times_s": ts,
            }
        )
    print("| target | median ms | min ms | x eager (median of per-round ratios) |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {1e3 * r['median_s']:.0f} | {1e3 * r['min_s']:.0f} | {r['x_eager']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
