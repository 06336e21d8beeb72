"""One measurement in a fresh process, so peak memory belongs to one target alone.

    python -m benchmarks.worker --target eager|ARTIFACT --model DIR --precision P --device D --workload NAME [--tf32]
prints one JSON object: latencies (s), load seconds, baseline/peak host RSS (MiB), device memory (MiB), the TF32
settings the calls ran under.

Every target is timed the same way: its inputs are prepared and validated (artifacts: `runner.prepare`, the runtime's
checks) before the timed region, and the timed call is the compute alone (`runner.run_prepared`, or the eager model's
forward). fp32 runs without TF32 (`models.tf32.exact_float32()`) unless `--tf32` is given; the result says which.

Device memory on CUDA is counted by the driver (`torch.cuda.mem_get_info`: total - free), before loading and after
every call, so what a backend allocates outside torch's caching allocator (onnxruntime's arena, AOTInductor's
constants, TensorRT's engine and context memory) is counted too; torch's own peak is reported beside it. It counts
the whole GPU: another process allocating meanwhile would be counted as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from contract.dtypes import DTYPES
from models import load_config
from models.tf32 import exact_float32, tf32_enabled, tf32_state

from .workloads import WORKLOADS

Inputs = tuple[torch.Tensor, torch.Tensor]


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def device_used_bytes(device: str) -> int:
    """Bytes in use on the whole GPU according to the driver (every allocator, every process)."""
    free, total = torch.cuda.mem_get_info(torch.device(device))
    return int(total - free)


def device_memory(baseline_used: int, used_samples: list[int], torch_peak_reserved: int) -> dict[str, float]:
    """Device memory of one target, from driver readings taken before it loaded and after each step.

    `device_peak_mib`: the most the GPU held above the baseline (the CUDA context, created before the baseline,
    is not counted); `device_torch_mib`: torch's caching allocator peak (reserved); `device_outside_torch_mib`:
    the rest, what the backend allocated itself (never negative: the driver rounds allocations up)."""
    peak = max(used_samples, default=baseline_used) - baseline_used
    peak = max(peak, 0)
    mib = 2**20
    return {
        "device_peak_mib": peak / mib,
        "device_torch_mib": torch_peak_reserved / mib,
        "device_outside_torch_mib": max(peak - torch_peak_reserved, 0) / mib,
    }


Loaded = tuple[Callable[..., Inputs], Callable[..., Any], Callable[[], bool]]


def _load(target: str, model_dir: str, precision: str, device: str) -> Loaded:
    """(prepare, compute, computes_tf32): `prepare(pv, pos)` runs outside the timed region, `compute(*prepared)`
    inside it; `computes_tf32()` says whether the target's fp32 math uses TF32 under the settings of the moment."""
    if target == "eager":
        from models.eager import EagerRunner

        # TF32 is decided by `measure` around the timed calls (--tf32), so the runner leaves it alone.
        eager = EagerRunner.load(model_dir, precision, "sdpa", device, exact_fp32=False)
        follows = device.startswith("cuda") and precision == "fp32"
        return (lambda pv, pos: (pv, pos)), eager, (lambda: follows and tf32_enabled())
    import runtime

    runner = runtime.load(target, device=device)
    return runner.prepare, runner.run_prepared, runner.computes_tf32


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workload = WORKLOADS[args.workload]
    device = args.device
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.init()
        torch.zeros(1, device=device)  # the CUDA context exists before the baseline: it is not the target's memory
        torch.cuda.synchronize(device)
    baseline = current_rss_mib()
    device_baseline = device_used_bytes(device) if cuda else 0
    start = time.perf_counter()
    prepare, compute, computes_tf32 = _load(args.target, args.model, args.precision, device)
    load_s = time.perf_counter() - start
    patch = load_config(args.model).patch_size  # the checkpoint's own geometry
    inputs = [prepare(*workload.inputs(seed, DTYPES[args.precision], device, patch)) for seed in range(args.rotate)]
    used: list[int] = []
    if cuda:
        torch.cuda.synchronize(device)
        used.append(device_used_bytes(device))
        torch.cuda.reset_peak_memory_stats()

    def call(i: int) -> float:
        pv, pos = inputs[i % len(inputs)]
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            compute(pv, pos)
            end.record()
            end.synchronize()
            used.append(device_used_bytes(device))  # after the timed region
            return begin.elapsed_time(end) / 1000
        t0 = time.perf_counter()
        compute(pv, pos)
        return time.perf_counter() - t0

    numerics = contextlib.nullcontext() if args.tf32 else exact_float32()
    with torch.inference_mode(), numerics:
        tf32 = tf32_state()
        tf32_in_use = computes_tf32()
        for i in range(args.warmup):
            call(i)
        latencies = [call(i) for i in range(args.iters)]
    memory = device_memory(device_baseline, used, torch.cuda.max_memory_reserved()) if cuda else {}
    return {
        "target": args.target,
        "workload": workload.name,
        "precision": args.precision,
        "device": device,
        "load_s": load_s,
        "latencies_s": latencies,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": rss_mib(),
        "device_peak_mib": memory.get("device_peak_mib"),
        "device_torch_mib": memory.get("device_torch_mib"),
        "device_outside_torch_mib": memory.get("device_outside_torch_mib"),
        "tf32": tf32,
        "tf32_in_use": tf32_in_use,  # this target's fp32 math uses TF32 (the MFU divides by the TF32 peak then)
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
    parser.add_argument("--tf32", action="store_true", help="time fp32 with TF32 allowed (default: exact fp32)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
