"""The benchmark code stays tested: FLOP count, and a quick end-to-end run (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.flops import encoder_flops
from benchmarks.gemm_profile import gemm_path
from benchmarks.gemm_profile import main as gemm_main
from benchmarks.peaks import PEAK_TFLOPS, gpu_model, peak_tflops
from benchmarks.report import percentile
from benchmarks.worker import _load, device_memory
from benchmarks.workloads import WORKLOADS
from models import OneVisionEncoderConfig
from tests.conftest import Available


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
    assert any(label.startswith("torchscript-") for label in labels), labels
    for row in report["rows"]:
        assert row["p50_s"] > 0 and row["images_per_s"] > 0 and row["rss_peak_mib"] > row["rss_baseline_mib"] * 0.5
        assert row["vs_eager"] > 0
    assert (out / "q" / "bench.png").stat().st_size > 1000
    assert "| workload |" in (out / "q" / "bench.md").read_text()


# -- MFU peaks, device memory, timing discipline (issue: day one, section 4) --------------------------------------


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L40", None),  # not L40S, not L4: no figure, no MFU
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA GeForce RTX 4090 D", None),
        ("NVIDIA B200", None),
        ("Tesla T4", None),
    ],
)
def test_gpu_model_from_device_name(name: str, model: str | None) -> None:
    assert gpu_model(name) == model


def test_peak_matches_precision_and_gpu() -> None:
    # H100 SXM datasheet: BF16 1,979 TFLOPS with sparsity -> 989.5 dense; FP32 67; TF32 989 sparse -> 494.5 dense.
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16", tf32=False)[0] == 989.5
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp16", tf32=False)[0] == 989.5
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=False)[0] == 67.0  # exact fp32: CUDA cores
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=True)[0] == 494.5  # TF32 tensor cores
    assert peak_tflops("NVIDIA H100 PCIe", "bf16", tf32=False)[0] == 756.5  # another board, another peak
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "bf16", tf32=True)[0] == 312.0  # tf32 changes only fp32
    peak, note = peak_tflops("NVIDIA B200", "bf16", tf32=False)
    assert peak is None and "MFU not reported" in note and "B200" in note
    for model, table in PEAK_TFLOPS.items():  # dense tensor-core peaks sit above the CUDA-core fp32 peak
        assert table["bf16"] == table["fp16"] >= table["tf32"] >= table["fp32"] > 0, model


def test_device_memory_counts_what_torch_does_not_allocate() -> None:
    mib = 2**20
    # Baseline 500 MiB (CUDA context); after load +300 MiB; peaks at +1,200 MiB during the runs; torch reserved 200.
    readings = [800 * mib, 1700 * mib, 1500 * mib]
    got = device_memory(500 * mib, readings, torch_peak_reserved=200 * mib)
    assert got == {"device_peak_mib": 1200.0, "device_torch_mib": 200.0, "device_outside_torch_mib": 1000.0}
    # Eager: everything is torch's (the driver rounds up: never a negative "outside").
    got = device_memory(500 * mib, [1000 * mib], torch_peak_reserved=510 * mib)
    assert got["device_peak_mib"] == 500.0 and got["device_outside_torch_mib"] == 0.0
    assert device_memory(500 * mib, [], 0)["device_peak_mib"] == 0.0


def test_artifacts_are_timed_like_eager_validation_outside(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timed call of an artifact is its compute alone: the runtime's input checks ran in `prepare`, before
    the timed region, as eager's timed call is its forward alone."""
    from contract.profiles import PROFILES
    from export import BuildRequest, build
    from runtime import validation

    path = build("onnx", BuildRequest(tiny_dir, "fp32", [PROFILES["test-small"]], tmp_path, options={"quiet": True}))
    prepare, compute, computes_tf32 = _load(str(path.path), str(tiny_dir), "fp32", "cpu")
    assert computes_tf32() is False
    pv, pos = WORKLOADS["tiny-112-b2"].inputs(0, torch.float32, "cpu", patch=14)
    prepared = prepare(pv, pos)
    expected = compute(*prepared)

    def no_checks(*args: object, **kwargs: object) -> None:
        raise AssertionError("input validation inside the timed call")

    monkeypatch.setattr(validation, "check_inputs", no_checks)
    monkeypatch.setattr("runtime.base.check_inputs", no_checks)
    assert torch.equal(compute(*prepared), expected)


def test_cuda_benchmarks_take_the_artifacts_that_move(tiny_artifacts_fp32: Available[Path], tiny_dir: Path) -> None:
    """`--device cuda` times every artifact that can run there: a CPU-built pt2, ONNX or TorchScript moves (its kind's
    description says so), a CPU AOTInductor package or an OpenVINO IR does not (they used to be filtered by the
    manifest's build device, which left the movable ones out)."""
    from benchmarks.__main__ import find_artifacts
    from models import weights_sha256

    folder = tiny_artifacts_fp32["pt2"].parent
    weights = weights_sha256(tiny_dir)
    on_cuda = {m.kind for _, m in find_artifacts(folder, None, "cuda", weights)}
    on_cpu = {m.kind for _, m in find_artifacts(folder, None, "cpu", weights)}
    assert on_cuda == {"pt2", "onnx", "torchscript"} & set(tiny_artifacts_fp32)
    assert on_cpu == set(tiny_artifacts_fp32)


def test_mfu_divides_by_the_peak_of_what_the_target_computes() -> None:
    """With --tf32, a torch target's fp32 uses TF32 (its row says so) and its MFU divides by the TF32 peak; an
    onnxruntime or TensorRT target still computes exact fp32 (use_tf32=0, or an engine built without TF32): the fp32
    peak."""
    from benchmarks.__main__ import add_mfu

    torch_row = {"tflops": 49.45, "tf32_in_use": True}
    ort_row = {"tflops": 6.7, "tf32_in_use": False}
    add_mfu(torch_row, "NVIDIA H100 80GB HBM3", "fp32")
    add_mfu(ort_row, "NVIDIA H100 80GB HBM3", "fp32")
    assert torch_row["mfu"] == pytest.approx(0.1) and "tf32 peak 494.5" in str(torch_row["mfu_peak"])
    assert ort_row["mfu"] == pytest.approx(0.1) and "fp32 peak 67" in str(ort_row["mfu_peak"])


# -- the mixed-workload benchmark (benchmarks/mixed.py): packed against one at a time and padded batches ----------


def test_mixes_are_seeded_and_inside_their_ranges() -> None:
    from benchmarks.mixes import MIXES

    mix = MIXES["mix"]
    shapes = mix.shapes(0)
    assert shapes == mix.shapes(0) and shapes != mix.shapes(1)
    assert sorted({s.source for s in shapes}) == ["clip", "codec", "image"] and len(shapes) == 48
    for s in shapes:
        lo, hi = {"image": mix.image_sides, "clip": mix.clip_sides, "codec": (mix.canvas, mix.canvas)}[s.source]
        assert lo <= min(s.height, s.width) and max(s.height, s.width) <= hi and s.height % 14 == s.width % 14 == 0
        assert s.frames == 1 if s.source == "image" else s.frames <= 16
    ratios = {round(max(s.height, s.width) / min(s.height, s.width), 1) for s in shapes if s.source == "image"}
    assert len(ratios) >= 4, ratios
    items = MIXES["tiny"].items(0, torch.float32)
    again = MIXES["tiny"].items(0, torch.float32)
    for (pv, pos), (pv2, pos2), s in zip(items, again, MIXES["tiny"].shapes(0), strict=True):
        assert pv.shape == (1, 3, s.frames, s.height, s.width) and pos.shape == (1, s.tokens(14), 3)
        assert torch.equal(pv, pv2) and torch.equal(pos, pos2)
    codec = next(pos for (_, pos), s in zip(items, MIXES["tiny"].shapes(0), strict=True) if s.source == "codec")
    assert int(codec[0, :, 0].max()) > 0  # a codec selection keeps its patches' original t: not a one-frame grid


def test_padded_batches_stay_within_the_budget_and_pad_with_zeros() -> None:
    from benchmarks.mixes import Item, pad_batch, padded_calls

    shapes = [Item("image", 1, 28, 56), Item("image", 1, 28, 28), Item("clip", 2, 28, 28), Item("image", 1, 56, 56)]
    calls = padded_calls(shapes, 14, budget_tokens=16, max_batch=4)
    assert sorted(i for c in calls for i in c) == [0, 1, 2, 3]
    assert calls == [[1, 0], [2], [3]]  # shortest first; [1, 0, 2] would pad to 2x28x56: 3 x 8 tokens > 16
    pv = [torch.ones(1, 3, s.frames, s.height, s.width) for s in shapes]
    batch, pos = pad_batch([(pv[i], None) for i in (1, 0)], [shapes[i] for i in (1, 0)], 14)  # type: ignore[misc]
    assert batch.shape == (2, 3, 1, 28, 56) and pos.shape == (2, 8, 3)
    assert batch[0, :, :, :, :28].eq(1).all() and batch[0, :, :, :, 28:].eq(0).all() and batch[1].eq(1).all()


def test_mixed_benchmark_quick_runs_every_strategy(tiny_dir: Path, tmp_path: Path) -> None:
    """`python -m benchmarks.mixed --quick`: tiny pt2 artifacts (batched; packed with padded and with mask attention),
    the tiny mix, every strategy timed in one process; packed outputs equal the items' one-at-a-time outputs."""
    out = tmp_path / "mixed"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.mixed", "--quick", "--model", str(tiny_dir), "--out", str(out),
         "--name", "q", "--artifacts-dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "q" / "mixed.json").read_text())
    (result,) = report["results"]
    assert result["kind"] == "pt2" and result["mix"] == "tiny" and result["items"] == 5
    rows = {r["strategy"]: r for r in result["rows"]}
    assert list(rows) == ["one-at-a-time", "padded", "packed-mask", "packed-padded"]
    for name, row in rows.items():
        assert row["items_per_s"] > 0 and row["tokens_per_s"] > 0 and row["x_one"] > 0, name
        assert len(row["pass_s"]) == report["rounds"] and row["p99_call_s"] >= row["p50_call_s"] > 0, name
        assert sorted(i for call in result["calls"][name] for i in call) == list(range(5)), name
    assert rows["one-at-a-time"]["calls"] == 5 and rows["one-at-a-time"]["x_one"] == 1.0
    for name in ("packed-mask", "packed-padded"):
        assert rows[name]["compared_items"] == 5 and rows[name]["max_rel_l2_vs_one"] < 1e-5, rows[name]
    assert rows["padded"]["max_rel_l2_vs_one"] is None  # a padded item's output is not its own: not compared
    assert "| tiny | pt2 | packed-padded |" in (out / "q" / "mixed.md").read_text()
    assert (out / "q" / "mixed.png").stat().st_size > 1000


def test_gemm_profile_reads_both_libraries_verbose_lines() -> None:
    onednn = (
        "onednn_verbose,v1,primitive,exec,cpu,inner_product,brg_matmul:avx2,forward_inference,src:f32::blocked:ab::f0 "
        "wei:f32::blocked:AB16b64a::f0,attr-scratchpad:user,,mb1024ic1024oc1024,62.5"
    )
    assert gemm_path(onednn, 64) == ("oneDNN inner_product (brg_matmul:avx2)", 0.0625)
    mkl = "MKL_VERBOSE SGEMM(T,N,1024,1024,4096,0x1,0x2,1024,0x3,1024,0x4,0x5,1024) 55.78ms CNR:OFF Dyn:1 TID:0 NThr:2"
    assert gemm_path(mkl, 64) == ("MKL sgemm", pytest.approx(0.05578))
    block = "MKL_VERBOSE SGEMM(T,N,512,256,64,0x1,0x2,1024,0x3,1024,0x4,0x5,512) 276.67us CNR:OFF Dyn:1 TID:0 NThr:1"
    assert gemm_path(block, 64) == ("MKL sgemm (attention blocks)", pytest.approx(276.67e-6))
    assert gemm_path("onednn_verbose,v1,info,cpu,isa:Intel AVX2", 64) is None


def test_gemm_profile_counts_every_linear_of_eager(tiny_dir: Path, tmp_path: Path) -> None:
    """A real forward under the libraries' verbose logs: every linear layer (6 a layer) is one GEMM call found."""
    out = tmp_path / "gemm.json"
    args = ["--model", str(tiny_dir), "--workload", "tiny-112-b2", "--iters", "1", "--warmup", "1", "--out", str(out)]
    assert gemm_main(args) == 0
    paths = json.loads(out.read_text())["results"]["eager"]
    linear = [p for p in paths if "attention" not in p and ("sgemm" in p or "inner_product" in p or "matmul" in p)]
    assert (
        sum(paths[p]["calls"] for p in linear) == 6 * OneVisionEncoderConfig.from_pretrained(tiny_dir).num_hidden_layers
    )
    assert all(paths[p]["seconds"] > 0 for p in linear)
