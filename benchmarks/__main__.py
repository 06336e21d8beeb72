"""`python -m benchmarks`: latency, throughput, memory and MFU of every artifact against eager, in one run.

Each target (eager PyTorch sdpa at the same precision, and each artifact) runs in its own process
(`benchmarks.worker`), one after another, so peak memory is its own and every ratio to eager comes from the
same run. Every target is timed the same way (input validation before the timed region, see `benchmarks.worker`),
fp32 without TF32 unless `--tf32` (the report states which). On CUDA, MFU divides by the dense peak of the GPU
model and precision timed (`benchmarks/peaks.py`); an unknown GPU gets no MFU. Results:
results/bench/<name>/bench.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from contract.backends import BACKENDS
from contract.compat import cpu_capability, native_bf16_cpu
from contract.manifest import KINDS, Manifest, read_manifest
from contract.profiles import ShapeProfile
from models import OneVisionEncoderConfig, load_config, weights_sha256
from models.synthetic import ensure_default
from models.tf32 import exact_float32

from .floors import matmul_gflops
from .flops import encoder_flops
from .peaks import peak_tflops
from .report import export_table, markdown, plot, summarise
from .worker import DTYPES
from .workloads import CPU_WORKLOADS, GPU_WORKLOADS, QUICK_WORKLOADS, WORKLOADS


def machine_description(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}"
    if device.startswith("cuda"):
        import torch

        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def torch_device_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return str(torch.cuda.get_device_name(torch.device(device)))


def runs_on(manifest: Manifest, device: str) -> bool:
    """Whether an artifact runs on `device` (its kind's description: a kind that moves runs on any of its devices,
    a CPU-built pt2 or ONNX on CUDA included; the others only where they were built)."""
    described = BACKENDS.get(manifest.kind)
    asked = device.split(":")[0]
    if described is None:
        return False
    allowed = described.devices if described.devices is not None else (manifest.device.split(":")[0],)
    return asked in allowed


def find_artifacts(directory: Path, names: list[str] | None, device: str, weights: str) -> list[tuple[Path, Manifest]]:
    """Artifacts in `directory` that run on `device`, built from the weights whose sha256 is `weights` (an artifact of
    another checkpoint is passed over with a note: its ratio to this model's eager would mean nothing)."""
    found = []
    for mpath in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        artifact = mpath.with_suffix("")
        try:
            manifest = read_manifest(artifact, verify=False)
        except ValueError:
            continue
        if manifest.kind not in KINDS or not runs_on(manifest, device):
            continue
        if names and artifact.name not in names and manifest.kind not in names:
            continue
        if manifest.source.get("weights_sha256") != weights:
            print(f"note: skipping {artifact.name}: built from other weights than --model", file=sys.stderr)
            continue
        found.append((artifact, manifest))
    return found


def quick_artifacts(model_dir: Path, out: Path) -> Path:
    """Quick mode with no artifacts given: export small tiny-preset ONNX, torch.export and TorchScript artifacts."""
    from contract.profiles import resolve_profile
    from export import build
    from export.base import BuildRequest

    out.mkdir(parents=True, exist_ok=True)
    for kind in (k for k, b in BACKENDS.items() if b.quick):
        request = BuildRequest(model_dir, "fp32", [resolve_profile("test-small")], out)
        build(kind, request)
    return out


def run_worker(target: str, model_dir: Path, precision: str, device: str, workload: str, args: Any) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.worker", "--target", target, "--model", str(model_dir),
        "--precision", precision, "--device", device, "--workload", workload,
        "--iters", str(args.iters), "--warmup", str(args.warmup), *(["--tf32"] if args.tf32 else []),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:200]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="checkpoint (default: synthetic full, or tiny with --quick)")
    p.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    p.add_argument("--artifacts", help="comma-separated artifact file names or kinds (default: all found)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workloads", help=f"comma-separated, from {sorted(WORKLOADS)}")
    p.add_argument("--precisions", help="eager precisions to time (default: those of the artifacts, + fp32)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tf32", action="store_true", help="time fp32 with TF32 allowed (default: exact fp32)")
    p.add_argument("--quick", action="store_true", help="tiny preset, tiny workload, few iterations (CI)")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--name", help="results sub-folder (default: cpu|cuda[-quick])")
    return p


@dataclass
class Plan:
    """What one run times: the artifacts, workloads, precisions, and the matmul floors measured for them."""

    model_dir: Path
    config: OneVisionEncoderConfig
    artifacts: list[tuple[Path, Manifest]]
    workloads: list[str]
    precisions: list[str]
    floors: dict[str, float]
    floor_detail: dict[str, dict[str, float]]
    gpu_name: str | None
    tmp: tempfile.TemporaryDirectory[str] | None = None

    def targets(self) -> list[tuple[str, str, str]]:
        """(label, target, precision): eager first at each precision, then its artifacts."""
        out: list[tuple[str, str, str]] = []
        for p in self.precisions:
            out.append(("eager", "eager", p))
            out += [(a.name, str(a), m.precision) for a, m in self.artifacts if m.precision == p]
        return out


def make_plan(args: argparse.Namespace) -> Plan:
    device = args.device
    if args.quick:
        args.iters, args.warmup = min(args.iters, 3), min(args.warmup, 1)
    model_dir = args.model or ensure_default("tiny" if args.quick else "full")
    names = args.artifacts.split(",") if args.artifacts else None
    weights = weights_sha256(model_dir)
    artifacts_dir, tmp = args.artifacts_dir, None
    if args.quick and not find_artifacts(artifacts_dir, names, device, weights):
        tmp = tempfile.TemporaryDirectory(prefix="bench-quick-")
        artifacts_dir = quick_artifacts(model_dir, Path(tmp.name))
    artifacts = find_artifacts(artifacts_dir, names, device, weights)
    default_workloads = QUICK_WORKLOADS if args.quick else GPU_WORKLOADS if device.startswith("cuda") else CPU_WORKLOADS
    workloads = args.workloads.split(",") if args.workloads else default_workloads
    precisions = (
        args.precisions.split(",") if args.precisions else sorted({"fp32", *(m.precision for _, m in artifacts)})
    )
    floor_n = 1024 if args.quick else 4096
    with contextlib.nullcontext() if args.tf32 else exact_float32():  # the floor under the same numerics
        detail = {
            p: matmul_gflops(DTYPES[p], n=floor_n, device=device) for p in precisions if p != "fp16" or device != "cpu"
        }
    floors = {p: max(by_library.values()) for p, by_library in detail.items()}
    return Plan(model_dir, load_config(model_dir), artifacts, workloads, precisions, floors, detail,
                torch_device_name(device), tmp)  # fmt: skip


def time_targets(plan: Plan, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each (workload, target) in its own worker process; rows with throughput, floor fraction and MFU."""
    manifests = {str(a): m for a, m in plan.artifacts}
    rows: list[dict[str, Any]] = []
    jobs = [(w, t) for w in plan.workloads for t in plan.targets()]
    for workload_name, (label, target, precision) in tqdm(jobs, desc="benchmark", unit="run"):
        workload = WORKLOADS[workload_name]
        if target != "eager":
            profile = ShapeProfile.from_dict(manifests[target].profile)
            why = profile.violations(workload.batch, workload.frames, workload.height, workload.width)
            if why:
                tqdm.write(f"skip {label} on {workload_name}: {why[0]}")
                continue
        row = run_worker(target, plan.model_dir, precision, args.device, workload_name, args)
        row.update(label=label, workload=workload_name, precision=precision)
        if "error" not in row:
            tokens = workload.tokens(plan.config.patch_size)
            flops = encoder_flops(plan.config, tokens, workload.batch)
            summarise(row, flops, workload.images, workload.batch * tokens, plan.floors.get(precision))
            add_mfu(row, plan.gpu_name, precision)
        rows.append(row)
    add_ratios(rows)
    return rows


def add_mfu(row: dict[str, Any], gpu_name: str | None, precision: str) -> None:
    """MFU against the peak of what this target computes: the TF32 peak only when its fp32 math used TF32 (torch
    kinds with --tf32; never onnxruntime, which runs use_tf32=0, nor an engine built without TF32)."""
    if gpu_name is None:
        return
    peak, note = peak_tflops(gpu_name, precision, bool(row.get("tf32_in_use")))
    row["mfu_peak"] = note
    if peak:
        row["mfu"] = row["tflops"] / peak


def add_ratios(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        eager = next(
            (r for r in rows if r["label"] == "eager" and r["workload"] == row["workload"]
             and r["precision"] == row["precision"] and "error" not in r),
            None,
        )  # fmt: skip
        if eager and "error" not in row:
            row["vs_eager"] = eager["p50_s"] / row["p50_s"]


def notes(plan: Plan, args: argparse.Namespace, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(tf32 note, the report's note under the table)."""
    tf32_note = (
        "TF32 allowed for fp32 (--tf32) where the target follows torch's flags"
        if args.tf32
        else "fp32 timed without TF32 (models.tf32.exact_float32: IEEE fp32 matmuls and convolutions)"
    )
    timing_note = "Every target timed the same way: input validation before the timed region, the compute alone inside."
    if args.device.startswith("cuda"):
        peaks = sorted({r["mfu_peak"] for r in rows if r.get("mfu_peak")})
        note = f"MFU = achieved TFLOP/s / dense peak of this GPU for what each target computes: {'; '.join(peaks)}."
        note += f" {tf32_note}. Device MiB: driver-counted (all allocators) above the pre-load baseline."
    else:
        note = "'of floor' = (FLOPs / measured matmul throughput) / p50 latency: 100 % would be matmul-bound. "
        note += tf32_note + "."
    detail = "; ".join(f"{p}: " + ", ".join(f"{k} {v:.0f}" for k, v in d.items()) for p, d in plan.floor_detail.items())
    return tf32_note, f"{note} {timing_note} Matmul GFLOP/s by library: {detail}."


def write_report(plan: Plan, args: argparse.Namespace, rows: list[dict[str, Any]]) -> Path:
    device = args.device
    builds = [{"artifact": a.name, "kind": m.kind, "precision": m.precision, **m.build} for a, m in plan.artifacts]
    machine = machine_description(device)
    tf32_note, note = notes(plan, args, rows)
    out = args.out / (args.name or f"{'cuda' if device.startswith('cuda') else 'cpu'}{'-quick' if args.quick else ''}")
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine, "model": str(plan.model_dir), "device": device, "gpu": plan.gpu_name, "tf32": args.tf32,
        "tf32_note": tf32_note, "floors_gflops": plan.floors, "floors_by_library_gflops": plan.floor_detail,
        "rows": rows, "exports": builds, "iters": args.iters, "warmup": args.warmup,
        "cpu_capability": cpu_capability(), "native_bf16_cpu": native_bf16_cpu(),
    }  # fmt: skip
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(rows, machine, plan.floors, note) + export_table(builds)
    (out / "bench.md").write_text(table)
    plot(rows, out / "bench.png", f"{machine} — {plan.model_dir}")
    print(table)
    print(f"wrote {out}/bench.json, bench.md, bench.png")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA GPU is visible to torch", file=sys.stderr)
            return 2
    plan = make_plan(args)
    rows = time_targets(plan, args)
    write_report(plan, args, rows)
    if plan.tmp is not None:
        plan.tmp.cleanup()
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
