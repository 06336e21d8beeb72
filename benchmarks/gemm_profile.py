"""Which GEMM each target runs on the CPU, and for how long: the libraries' own verbose logs (oneDNN's per-primitive
exec time, MKL's per-SGEMM time) over a few calls of eager and each artifact, AOTInductor packages included (which
torch.profiler cannot see into: benchmarks.op_profile).

    python -m benchmarks.gemm_profile --model DIR --precision fp32 ARTIFACT... [--iters 2] [--out gemm.json]

Prints per target the median time per call of each path ("oneDNN inner_product (brg_matmul:avx2)", "MKL sgemm",
"MKL sgemm (attention blocks)": SGEMMs with the head dimension as one side, which ATen's CPU flash attention calls),
and how many calls a forward makes. Verbose logging slows every call, so the times are for comparing
paths, not absolute latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES
from models.checkpoint import load_config
from models.tf32 import exact_float32

from .interleaved import targets
from .workloads import WORKLOADS

MARK = "== onevision call"
SGEMM = re.compile(r"MKL_VERBOSE SGEMM\(\w,\w,(\d+),(\d+),(\d+),.*\) ([\d.]+)(us|ms|s) ")
SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gemm_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts", nargs="*", type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--precision", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--workload", default="image-448-b1", choices=sorted(WORKLOADS))
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the result as JSON here too")
    return p


def verbose_log(call: Callable[[], Any], iters: int) -> str:
    """`iters` calls with oneDNN and MKL verbose on, each preceded by a marker line; the libraries print to the
    process's stdout (fd 1), which is captured for the duration."""
    sys.stdout.flush()
    with tempfile.TemporaryFile("w+") as log:
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.backends.mkl.verbose(1):
                for _ in range(iters):
                    os.write(1, f"{MARK}\n".encode())
                    call()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        return log.read()


def gemm_path(line: str, head_dim: int) -> tuple[str, float] | None:
    """(path, seconds) of one verbose line that timed a primitive or SGEMM; None for any other line."""
    sgemm = SGEMM.match(line)
    if sgemm:
        dims = {int(d) for d in sgemm.group(1, 2, 3)}
        label = "MKL sgemm (attention blocks)" if head_dim in dims else "MKL sgemm"
        return label, float(sgemm.group(4)) * SECONDS[sgemm.group(5)]
    fields = line.strip().split(",")
    if line.startswith("onednn_verbose") and len(fields) > 7 and fields[2] == "primitive" and fields[3] == "exec":
        return f"oneDNN {fields[5]} ({fields[6]})", float(fields[-1]) * 1e-3
    return None


def per_call(log: str, head_dim: int) -> list[dict[str, tuple[float, int]]]:
    """path -> (seconds, calls) for each profiled forward of the log."""
    forwards: list[dict[str, tuple[float, int]]] = []
    for line in log.splitlines():
        if line.startswith(MARK):
            forwards.append(defaultdict(lambda: (0.0, 0)))
        elif forwards and (found := gemm_path(line, head_dim)):
            seconds, count = forwards[-1][found[0]]
            forwards[-1][found[0]] = (seconds + found[1], count + 1)
    return forwards


def summarise(forwards: list[dict[str, tuple[float, int]]]) -> dict[str, dict[str, float]]:
    paths = sorted({path for forward in forwards for path in forward})
    return {
        path: {
            "seconds": statistics.median(f[path][0] if path in f else 0.0 for f in forwards),
            "calls": max(f[path][1] if path in f else 0 for f in forwards),
        }
        for path in paths
    }


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["| target | path | s per forward | calls per forward |", "|---|---|---:|---:|"]
    for target, paths in results.items():
        for path, row in sorted(paths.items(), key=lambda kv: -kv[1]["seconds"]):
            lines.append(f"| {target} | {path} | {row['seconds']:.3f} | {row['calls']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.device = "cpu"
    config = load_config(args.model)
    head_dim = config.hidden_size // config.num_attention_heads
    results: dict[str, dict[str, dict[str, float]]] = {}
    with torch.inference_mode(), exact_float32():
        for name, call in targets(args, torch.device("cpu")).items():
            for _ in range(args.warmup):
                call()
            results[name] = summarise(per_call(verbose_log(call, args.iters), head_dim))
            print(f"gemm_profile: {name} done", file=sys.stderr)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {args.precision}, {args.workload}")
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
