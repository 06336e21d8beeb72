"""Where the time goes, per op class (attention, linear, layernorm, ...), for eager and each artifact: one process,
targets one after the other, each warmed up, then the median of `--iters` profiled calls.

    python -m benchmarks.op_profile --model DIR --precision bf16 ARTIFACT... [--iters 3] [--out results.json]

torch targets (eager, pt2) are profiled with torch.profiler, by the self time of the ATen ops they call ("other":
elementwise ops, RoPE, copies; "unaccounted": wall time no op claims). AOTInductor packages are opaque to it (their
calls into ATen/oneDNN bypass the profiler), so they are not profiled here; their wrapper code names the kernels they
call (the same CPU flash-attention op and oneDNN linear as eager). Runners with an `op_times(pixel_values,
patch_positions)` method (OpenVINO: its per-node performance counters) report their own nodes.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES

from .workloads import WORKLOADS

# op class -> name pattern (torch op names and OpenVINO node types / names). OpenVINO runs the linear layers as
# FullyConnected (one input is the weights); a MatMul node multiplies two activations, which here is attention's
# Q.K^T or P.V (what OpenVINO leaves when it does not fuse attention: no AVX-512, or snippets disabled).
CLASSES = (
    ("attention", r"scaled_dot_product|flash_attention|ScaledDotProductAttention|^Softmax$|_softmax|^MatMul$"),
    ("linear", r"addmm|aten::mm$|aten::bmm|aten::matmul|_linear|linear_pointwise|FullyConnected|mkldnn_linear"),
    ("layernorm", r"layer_norm|^MVN$|RMS|LayerNorm"),
    ("patch conv", r"convolution|^Convolution$"),
    ("gelu", r"gelu|^Gelu$"),
)
# torch ops that only call others (counted through their children): skipped to avoid double counting
WRAPPERS = re.compile(
    r"^aten::(linear|matmul|layer_norm|scaled_dot_product_attention|conv3d|_convolution|convolution)$"
)


def op_class(name: str) -> str:
    for label, pattern in CLASSES:
        if re.search(pattern, name):
            return label
    return "other"


def node_class(node: dict[str, Any]) -> str:
    """The op class of a node an `op_times` method reports. A fused node (OpenVINO's "Subgraph") is classed by the
    original layers it runs (`fused`: their op types): attention when it holds attention's Softmax or SDPA, else
    the first class among them. Its name says nothing reliable (after sdpa in one precision, after a Transpose in
    another)."""
    kind = op_class(str(node["type"]))
    if kind != "other" or node["type"] != "Subgraph":
        return kind
    fused = [op_class(str(t)) for t in node.get("fused", [])]
    for label, _ in CLASSES:
        if label in fused:
            return label
    return "other"


def _torch_profile(call: Callable[[], Any], iters: int) -> list[dict[str, float]]:
    from torch.profiler import ProfilerActivity, profile

    runs = []
    for _ in range(iters):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            call()
            wall = time.perf_counter() - start
        per_class: dict[str, float] = defaultdict(float)
        for event in prof.key_averages():
            if WRAPPERS.match(event.key) or not event.key.startswith(("aten::", "mkldnn::", "onednn::")):
                continue
            per_class[op_class(event.key)] += event.self_cpu_time_total / 1e6
        per_class["unaccounted"] = max(0.0, wall - sum(per_class.values()))
        runs.append({"wall": wall, **per_class})
    return runs


def profile_target(target: str, model_dir: str, precision: str, iters: int) -> dict[str, Any]:
    dtype = DTYPES[precision]
    from models.checkpoint import load_config

    pv, pos = WORKLOADS["image-448-b1"].inputs(0, dtype, "cpu", load_config(model_dir).patch_size)
    with torch.inference_mode():
        if target == "eager":
            from models import load_model

            model = load_model(model_dir, dtype, "sdpa")
            model(pv, patch_positions=pos)  # warm-up
            runs = _torch_profile(lambda: model(pv, patch_positions=pos), iters)
        else:
            import runtime

            runner = runtime.load(target)
            pv, pos = runner.prepare(pv, pos)
            runner.run_prepared(pv, pos)  # warm-up
            op_times = getattr(runner, "op_times", None)
            if op_times is not None:
                runs = []
                for _ in range(iters):
                    start = time.perf_counter()
                    nodes = op_times(pv, pos)
                    wall = time.perf_counter() - start
                    per_class: dict[str, float] = defaultdict(float)
                    for node in nodes:
                        per_class[node_class(node)] += node["seconds"]
                    per_class["unaccounted"] = max(0.0, wall - sum(per_class.values()))
                    runs.append({"wall": wall, **per_class})
            else:
                runs = _torch_profile(lambda: runner.run_prepared(pv, pos), iters)
    keys = sorted({k for run in runs for k in run})
    return {"target": Path(target).name, **{k: statistics.median(run.get(k, 0.0) for run in runs) for k in keys}}


def table(rows: list[dict[str, Any]]) -> str:
    classes = [c for c, _ in CLASSES] + ["other", "unaccounted"]
    classes = [c for c in classes if any(c in r for r in rows)]
    head = "| target | wall s | " + " | ".join(f"{c} s" for c in classes) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(classes)]
    for r in rows:
        cells = " | ".join(f"{r.get(c, 0.0):.3f} ({100 * r.get(c, 0.0) / r['wall']:.0f} %)" for c in classes)
        lines.append(f"| {r['target']} | {r['wall']:.3f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.op_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="*", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--precision", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here too")
    args = parser.parse_args(argv)
    rows = []
    for target in ["eager", *map(str, args.artifacts)]:
        print(f"op_profile: {Path(target).name} ...", file=sys.stderr, flush=True)
        rows.append(profile_target(target, args.model, args.precision, args.iters))
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
