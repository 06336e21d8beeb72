"""One measurement in a fresh process, so peak memory belongs to one target alone.

    python -m benchmarks.worker --target eager|ARTIFACT --model DIR --precision P --device D --workload NAME
prints one JSON object: latencies (s), load seconds, baseline/peak host RSS (MiB), peak device memory (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from models.dtypes import DTYPES

from .workloads import WORKLOADS


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _load(target: str, model_dir: str, precision: str, device: str) -> Callable[..., torch.Tensor]:
    if target == "eager":
        from models import load_model

        model = load_model(model_dir, DTYPES[precision], "sdpa", device=device)

        def eager(pv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = model(pv, patch_positions=pos).last_hidden_state
            return out

        return eager
    import runtime

    return runtime.load(target, device=device)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workload = WORKLOADS[args.workload]
    device = args.device
    cuda = device.startswith("cuda")
    baseline = current_rss_mib()
    start = time.perf_counter()
    run = _load(args.target, args.model, args.precision, device)
    load_s = time.perf_counter() - start
    inputs = [workload.inputs(seed, DTYPES[args.precision], device) for seed in range(args.rotate)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def call(i: int) -> float:
        pv, pos = inputs[i % len(inputs)]
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            run(pv, pos)
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1000
        t0 = time.perf_counter()
        run(pv, pos)
        return time.perf_counter() - t0

    with torch.inference_mode():
        for i in range(args.warmup):
            call(i)
        latencies = [call(i) for i in range(args.iters)]
    return {
        "target": args.target,
        "workload": workload.name,
        "precision": args.precision,
        "device": device,
        "load_s": load_s,
        "latencies_s": latencies,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": rss_mib(),
        "device_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rotate", type=int, default=3, help="distinct seeded inputs cycled through")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
