"""`make gpu-check` (tools/gpu_check.py): one line and nothing built without a CUDA GPU; its plan uses only the
bundle's real command-line options (checked here against each CLI's own parser, so a typo fails on the CPU too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.workloads import WORKLOADS
from export.__main__ import parser as export_parser
from parity.__main__ import parser as parity_parser
from tools.gpu_check import no_cuda_line, plan

ROOT = Path(__file__).resolve().parents[1]


def test_make_gpu_check_without_cuda_is_one_line_and_builds_nothing(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        assert no_cuda_line() is None  # a GPU is here: gpu-check runs for real (make gpu-check)
        return
    results = tmp_path / "results"
    proc = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", f"RESULTS={results}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: skipped") and "no CUDA GPU" in lines[0], proc.stdout
    assert not results.exists() and not (ROOT / "artifacts" / "gpu-check").exists()


def test_gpu_check_plan_uses_real_options(tmp_path: Path) -> None:
    steps = plan(sys.executable, tmp_path / "r", tmp_path / "a", None, cuda_ep=True)
    names = [s.name for s in steps]
    assert any(n.startswith("pytest -m gpu") for n in names) and any("onnx fp32" in n for n in names)
    assert not any("onnx" in n for n in (s.name for s in plan(sys.executable, tmp_path, tmp_path, None, False)))
    for step in steps:
        cmd = step.cmd
        if cmd[:3] == [sys.executable, "-m", "export"]:
            export_parser().parse_args(cmd[3:])
        elif cmd[:3] == [sys.executable, "-m", "parity"]:
            args = parity_parser().parse_args(cmd[3:])
            assert args.device == "cuda"
        elif cmd[:3] == [sys.executable, "-m", "benchmarks"]:
            workloads = cmd[cmd.index("--workloads") + 1].split(",")
            assert workloads == ["image-448-b1", "image-448-b32", "codec-8x448"] and set(workloads) <= set(WORKLOADS)
            assert cmd[cmd.index("--precisions") + 1] == "bf16" and cmd[cmd.index("--device") + 1] == "cuda"
        elif cmd[:3] == [sys.executable, "-m", "pytest"]:
            assert (ROOT / next(a for a in cmd if a.startswith("tests/"))).is_file()
