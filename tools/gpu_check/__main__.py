"""`python -m tools.gpu_check run|plan`: `make gpu-check`, `make gpu-check-plan`, `make gpu-check-rehearsal`.

    python -m tools.gpu_check plan                                   # both tiers with their estimates (any machine)
    python -m tools.gpu_check run [--tier core|full] [--budget-s 420] [--results DIR] [--model DIR]
    python -m tools.gpu_check run --rehearsal                        # the same plan on the CPU, tiny checkpoint

`run` on a machine where torch sees no CUDA GPU prints one line and exits 0 without building anything (nothing to
check is not a failure), unless --rehearsal. Exit status 1 when a step failed (a step skipped for the budget or a
missing tool is reported, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from .plan import CORE, DEFAULT_BUDGET_S, TIERS, Target, describe, plan

ROOT = Path(__file__).resolve().parents[2]


def no_cuda_line() -> str | None:
    """One line saying why nothing runs here, or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError as exc:
        return f"gpu-check: skipped, nothing built or run: torch is not importable ({exc})"
    if torch.cuda.is_available():
        return None
    built = torch.version.cuda or "none (a CPU-only build)"
    return (
        f"gpu-check: skipped, nothing built or run: torch {torch.__version__} sees no CUDA GPU "
        f"(its CUDA: {built}); run `make gpu-check` on a machine with an NVIDIA GPU (`make gpu-check-rehearsal` "
        "runs the same plan on the CPU)"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("plan", help="print both tiers' steps with their estimates")
    run = sub.add_parser("run", help="run a tier")
    run.add_argument("--tier", choices=TIERS, default=os.environ.get("GPU_CHECK") or CORE)
    run.add_argument("--budget-s", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET_S") or DEFAULT_BUDGET_S))
    run.add_argument("--results", type=Path, help="report folder (default results/gpu-check/<gpu> or -rehearsal)")
    run.add_argument("--model", help="full-size checkpoint (default: the synthetic one)")
    run.add_argument("--artifacts", type=Path, help="artifacts and state (default artifacts/gpu-check[-rehearsal])")
    run.add_argument("--rehearsal", action="store_true", help="on the CPU with the tiny checkpoint for every step")
    run.add_argument("--steps", help="comma-separated substrings: run only the steps whose names contain one")
    return p


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else ROOT / path


def target_for(args: argparse.Namespace, gpu: str) -> Target:
    import onnxruntime

    rehearsal = bool(args.rehearsal)
    name = "rehearsal" if rehearsal else _slug(gpu)
    results = _absolute(args.results or Path("results/gpu-check") / name)
    arts = _absolute(args.artifacts or Path("artifacts") / ("gpu-check-rehearsal" if rehearsal else "gpu-check"))
    tiny = "checkpoints/synthetic-tiny"
    full = tiny if rehearsal else (args.model or "checkpoints/synthetic-full")
    cuda_ep = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    iters = (2, 1) if rehearsal else (10, 2)
    return Target("cpu" if rehearsal else "cuda", sys.executable, results, arts, tiny, full, cuda_ep and not rehearsal,
                  bench_iters=iters[0], bench_warmup=iters[1])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from .preflight import environment, toolchain
    from .run import Call

    if not args.rehearsal:
        line = no_cuda_line()
        if line is not None:
            print(line)
            return 0
    import torch

    gpu = torch.cuda.get_device_name(0) if not args.rehearsal else "cpu"
    target = target_for(args, gpu)
    steps = plan(target, args.tier)
    if args.steps:
        wanted = [w.strip() for w in args.steps.split(",") if w.strip()]
        steps = [s for s in steps if any(w in s.name for w in wanted)]
    target.results.mkdir(parents=True, exist_ok=True)
    info = {**environment(target.device), "torch": torch.__version__}
    if args.rehearsal:
        info["note"] = "rehearsal: torch 2.13 CPU stands in for the GPU machine's 2.11 CUDA build (not installable)"
    (target.results / "environment.json").write_text(json.dumps(info, indent=2) + "\n")
    call = Call(target, args.tier, args.budget_s, steps, info)
    call.toolchain, call.env = toolchain(target.device)
    print(f"gpu-check ({args.tier}) on {info['gpu']}, torch {info['torch']}: reports in {target.results}", flush=True)
    for name, reason in call.toolchain.items():
        if reason:
            print(f"note: {name}: {reason}", flush=True)
    return call.run_all()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "plan":
        results = Path("results/gpu-check/<gpu>")
        print(describe(Target("cuda", "python3", results, Path("artifacts/gpu-check"))))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
