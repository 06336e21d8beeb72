"""The benchmark code stays tested: FLOP count, and a quick end-to-end run (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.flops import encoder_flops
from benchmarks.report import percentile
from models import OneVisionEncoderConfig


def test_flops_of_one_448_image_full_size() -> None:
    # 24 x [2·1024·(4·1024² + 2·1024·4096) + 4·1024²·1024] + 2·1024·588·1024 = 0.7227 TFLOP
    flops = encoder_flops(OneVisionEncoderConfig(), tokens=1024)
    assert abs(flops - 722.7e9) / 722.7e9 < 1e-3
    assert encoder_flops(OneVisionEncoderConfig(), tokens=1024, batch=32) == 32 * flops


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 90) == 1.9


def test_quick_benchmark_runs_end_to_end(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--model", str(tiny_dir), "--out", str(out), "--name", "q",
         "--artifacts-dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "q" / "bench.json").read_text())
    labels = {r["label"] for r in report["rows"]}
    assert "eager" in labels and any(label.startswith("onnx-") for label in labels), labels
    for row in report["rows"]:
        assert row["p50_s"] > 0 and row["images_per_s"] > 0 and row["rss_peak_mib"] > row["rss_baseline_mib"] * 0.5
        assert row["vs_eager"] > 0
    assert (out / "q" / "bench.png").stat().st_size > 1000
    assert "| workload |" in (out / "q" / "bench.md").read_text()
