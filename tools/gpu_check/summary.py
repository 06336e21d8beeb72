"""summary.md and summary.json, rewritten after every step: a call cut off at any point has left its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .plan import Step, Target, estimate


def write(
    results: Path,
    target: Target,
    steps: list[Step],
    info: dict[str, Any],
    call: dict[str, Any],
    toolchain: dict[str, str | None],
) -> None:
    data = {"environment": info, "call": call, "toolchain": toolchain, "steps": [_step(s) for s in steps]}
    (results / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    (results / "summary.md").write_text(markdown(target, steps, info, call, toolchain))


def _step(s: Step) -> dict[str, Any]:
    return {
        "name": s.name,
        "tier": s.tier,
        "status": s.status,
        "seconds": round(s.seconds, 1),
        "estimate_s": s.estimate_s,
        "optional": s.optional,
        "command": s.command,
        "log": Path(s.log).name if s.log else None,
    }


def markdown(
    target: Target, steps: list[Step], info: dict[str, Any], call: dict[str, Any], toolchain: dict[str, str | None]
) -> str:
    what = "CPU rehearsal (tiny checkpoint for every step)" if target.rehearsal else f"{info.get('gpu')}"
    lines = [
        f"# gpu-check, tier {call['tier']}: {what}",
        "",
        f"{info.get('date_utc')}; torch {info.get('torch')} (CUDA {info.get('torch_cuda')}), transformers "
        f"{info.get('transformers')}, onnxruntime {info.get('onnxruntime')} {info.get('onnxruntime_providers')}, "
        f"numpy {info.get('numpy')}; {info.get('cpu_count')} CPU cores ({info.get('cpu')}).",
        f"Budget {call['budget_s']} s; {call['elapsed_s']:.0f} s elapsed; estimated {estimate(steps):.0f} s "
        f"(H100 guesses: tools/gpu_check/plan.py). State: {call['state']}. {call.get('note', '')}".rstrip(),
        "",
    ]
    lines += [f"- toolchain: {name}: {reason or 'found'}" for name, reason in toolchain.items()]
    lines += ["", "| # | tier | step | status | estimate s | seconds | log |", "|---:|---|---|---|---:|---:|---|"]
    for i, s in enumerate(steps, 1):
        log = f"`{Path(s.log).name}`" if s.log else "-"
        name = s.name + (" (optional)" if s.optional else "")
        lines.append(f"| {i} | {s.tier} | {name} | {s.status} | {s.estimate_s:.0f} | {s.seconds:.0f} | {log} |")
    lines += ["", "Reports: `parity/<name>/report.md`, `bench-*/bench.md`, `pytest-gpu.xml`, `logs/`."]
    return "\n".join(lines) + "\n"
