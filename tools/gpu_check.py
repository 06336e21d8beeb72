"""`make gpu-check`: everything a CUDA GPU can show, in one command, every report in one folder.

    python3 tools/gpu_check.py [--results DIR] [--model FULL_SIZE_CHECKPOINT] [--artifacts DIR]

On a machine where torch sees no CUDA GPU it prints one line and exits 0 without building anything (nothing to
check is not a failure; the line says nothing ran). On a CUDA machine, in order (each step logged to
<results>/logs/<step>.log; a failed step is reported and the next ones still run):

 1. environment.json: GPU, driver/CUDA, torch, transformers, onnx, onnxruntime and its providers;
 2. the synthetic tiny and full-size checkpoints (or --model for the full-size one);
 3. tiny artifacts for CUDA (pt2, AOTInductor, ONNX; fp32 and bf16) and a pt2 exported on the CPU, rebuilt on
    every run into --artifacts (default artifacts/gpu-check: gpu-check's own folder, overwritten);
 4. full-size artifacts for CUDA: pt2 fp32/bf16 and AOTInductor bf16 (image-448), pt2 and AOTInductor bf16
    (codec-8x448, for the codec benchmark), ONNX fp32 when onnxruntime has the CUDA provider;
 5. the C++ runner (runtime/cpp) against the installed torch's libtorch;
 6. `pytest -m gpu` and the CUDA-aware tests of the normal suite;
 7. the parity suite with CUDA references: tiny `--cases all` (with eager stand-ins), full size the default set;
 8. the GPU benchmarks: image-448 b1 and b32, codec 8x448, bf16, eager against every CUDA artifact.

Runs with the machine's own Python (`PYTHON=python3`, `PYTHONPATH=.`; no venv), needing torch with CUDA,
transformers, safetensors, numpy, onnx, onnxscript, onnxruntime, pytest, tqdm and matplotlib. Results:
summary.md/summary.json (a table of steps, status and seconds) beside the reports.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 20 * 60  # the budget for the whole run on one H100


@dataclass
class Step:
    name: str
    cmd: list[str]
    timeout_s: int = 900
    status: str = "not run"
    seconds: float = 0.0
    log: str = ""
    notes: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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
        f"(its CUDA: {built}); run `make gpu-check` on a machine with an NVIDIA GPU"
    )


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "gpu_count": torch.cuda.device_count(),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "cpu_count": os.cpu_count(),
    }
    for module in ("transformers", "onnx", "onnxscript", "onnxruntime", "safetensors", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def plan(py: str, results: Path, arts: Path, model: str | None, cuda_ep: bool) -> list[Step]:
    import torch

    tiny, full = arts / "tiny", arts / "full"
    full_model = model or "checkpoints/synthetic-full"
    tiny_model = "checkpoints/synthetic-tiny"

    def export(kind: str, ckpt: str, precision: str, profile: str, out: Path, device: str = "cuda") -> list[str]:
        args = ["--model", ckpt, "--precision", precision, "--profile", profile, "--device", device]
        return [py, "-m", "export", kind, *args, "--out", str(out), "--quiet", "--overwrite"]

    checkpoints = "from models.synthetic import ensure_default as e; e('tiny')" + ("" if model else "; e('full')")
    steps = [
        Step("checkpoints", [py, "-c", checkpoints], 600),
        Step("tiny: export all fp32 (cuda)", export("all", tiny_model, "fp32", "test-small", tiny)),
        Step("tiny: export all bf16 (cuda)", export("all", tiny_model, "bf16", "test-small", tiny)),
        # Exported on the CPU, run on CUDA by the parity suite (a device-free program moves): its own profile name.
        Step("tiny: pt2 fp32 exported on the CPU", export("pt2", tiny_model, "fp32", "image-any", tiny, "cpu")),
    ]
    full_jobs = [
        ("pt2", "fp32", "image-448"),
        ("pt2", "bf16", "image-448"),
        ("aoti", "bf16", "image-448"),
        ("pt2", "bf16", "codec-8x448"),
        ("aoti", "bf16", "codec-8x448"),
    ]
    if cuda_ep:
        full_jobs.append(("onnx", "fp32", "image-448"))
    for kind, precision, profile in full_jobs:
        steps.append(Step(f"full: {kind} {precision} {profile}", export(kind, full_model, precision, profile, full)))

    build_dir = "runtime/cpp/build"
    cmake = (
        f"cmake -S runtime/cpp -B {build_dir} -DCMAKE_BUILD_TYPE=Release "
        f"-DCMAKE_PREFIX_PATH='{torch.utils.cmake_prefix_path}' && cmake --build {build_dir} -j {os.cpu_count() or 2}"
    )
    pytest_gpu = ["-m", "gpu", "-q", "-rs", "tests/test_gpu.py", "--junitxml", str(results / "pytest-gpu.xml")]
    aware = ["tests/test_export.py", "tests/test_runtime.py", "tests/test_tf32.py", "-k", "cli_all or cuda or tf32"]
    parity = [py, "-m", "parity", "--device", "cuda", "--results-dir", str(results / "parity"), "--no-progress"]
    tiny_parity = ["--model", tiny_model, "--artifacts-dir", str(tiny), "--cases", "all", "--name", "tiny-all"]
    tiny_parity += ["--artifacts", "pt2,aoti,onnx,eager-fp32,eager-bf16"]
    full_parity = ["--model", full_model, "--artifacts-dir", str(full), "--name", "fullsize-default"]
    bench = ["--model", full_model, "--artifacts-dir", str(full), "--device", "cuda", "--precisions", "bf16"]
    bench += ["--workloads", "image-448-b1,image-448-b32,codec-8x448", "--iters", "20", "--warmup", "3"]
    bench += ["--out", str(results), "--name", "bench-cuda-bf16"]
    steps += [
        Step("C++ runner (cmake)", ["bash", "-c", cmake]),
        Step("pytest -m gpu", [py, "-m", "pytest", *pytest_gpu], 1200),
        Step("pytest: CUDA-aware tests of the normal suite", [py, "-m", "pytest", "-q", "-rs", *aware], 1200),
        Step("parity: tiny --cases all (CUDA references)", [*parity, *tiny_parity]),
        Step("parity: full size, default cases (CUDA references)", [*parity, *full_parity], 1200),
        Step("benchmarks: bf16 image-448 b1/b32, codec-8x448", [py, "-m", "benchmarks", *bench], 1200),
    ]
    return steps


def run_step(step: Step, index: int, total: int, logs: Path, env: dict[str, str]) -> None:
    log = logs / f"{index:02d}-{slug(step.name)[:60]}.log"
    step.log = str(log)
    print(f"[{index}/{total}] {step.name} ...", flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        f.write("$ " + " ".join(step.cmd) + "\n\n")
        f.flush()
        try:
            proc = subprocess.run(
                step.cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=step.timeout_s, check=False
            )
            step.status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            step.status = f"failed (timeout {step.timeout_s} s)"
    step.seconds = time.perf_counter() - start
    print(f"[{index}/{total}] {step.name}: {step.status} in {step.seconds:.0f} s (log {log})", flush=True)
    if step.status != "ok":
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print("\n".join("    " + line for line in tail), flush=True)


def summary(steps: list[Step], env_info: dict[str, Any], total_s: float) -> str:
    lines = [
        f"# gpu-check on {env_info['gpu']}",
        "",
        f"{env_info['date_utc']}; torch {env_info['torch']} (CUDA {env_info['torch_cuda']}), transformers "
        f"{env_info['transformers']}, onnxruntime {env_info['onnxruntime']} {env_info['onnxruntime_providers']}; "
        f"{env_info['cpu_count']} CPU cores. Total {total_s / 60:.1f} min (budget {BUDGET_S // 60} min).",
        "",
        "| # | step | status | seconds | log |",
        "|---:|---|---|---:|---|",
    ]
    for i, s in enumerate(steps, 1):
        lines.append(f"| {i} | {s.name} | {s.status} | {s.seconds:.0f} | `{Path(s.log).name if s.log else '-'}` |")
    lines += ["", "Reports: `parity/<name>/report.md`, `bench-cuda-bf16/bench.md`, `pytest-*.xml`, `logs/`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 tools/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="report folder (default results/gpu-check/<gpu name>)")
    parser.add_argument("--model", help="full-size checkpoint (default: the synthetic full-size one)")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/gpu-check"), help="artifact folder")
    args = parser.parse_args(argv)

    line = no_cuda_line()
    if line is not None:
        print(line)
        return 0
    info = environment()
    results = args.results or Path("results/gpu-check") / slug(info["gpu"])
    results = results if results.is_absolute() else ROOT / results
    arts = args.artifacts if args.artifacts.is_absolute() else ROOT / args.artifacts
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (results / "environment.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"gpu-check on {info['gpu']} ({info['gpu_memory_gib']} GiB), torch {info['torch']}: reports in {results}")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("TQDM_MININTERVAL", "10")
    cuda_ep = "CUDAExecutionProvider" in info["onnxruntime_providers"]
    steps = plan(sys.executable, results, arts, args.model, cuda_ep)
    if not cuda_ep:
        print("note: onnxruntime has no CUDA provider here: ONNX artifacts are built (tiny) but not run on CUDA")
    started = time.perf_counter()
    for i, step in enumerate(steps, 1):
        run_step(step, i, len(steps), logs, env)
    total = time.perf_counter() - started
    text = summary(steps, info, total)
    (results / "summary.md").write_text(text)
    (results / "summary.json").write_text(
        json.dumps({"environment": info, "seconds": total, "steps": [s.__dict__ for s in steps]}, indent=2) + "\n"
    )
    print(text)
    failed = [s.name for s in steps if s.status != "ok"]
    if total > BUDGET_S:
        print(f"note: took {total / 60:.1f} min, over the {BUDGET_S // 60} min budget")
    print(f"gpu-check: {len(steps) - len(failed)}/{len(steps)} steps ok" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
