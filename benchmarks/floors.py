"""Measured ceilings: large-matmul throughput per precision, the floor any artifact's latency is judged against.

The floor is the best of the GEMM libraries the artifacts use: torch.mm (MKL/oneDNN) and, for fp32 on the CPU,
onnxruntime's MLAS with a constant (pre-packed) weight. On AMD CPUs MKL's sgemm runs well below the machine's
AVX-512 peak, so a torch.mm-only floor would make MLAS- and oneDNN-backed artifacts look faster than the floor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_matmul_gflops(dtype: torch.dtype, n: int, repeats: int, device: str) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def run() -> None:
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return 2 * n**3 / _best_seconds(run, repeats) / 1e9


def ort_matmul_gflops(n: int, repeats: int) -> float:
    """fp32 n×n×n MatMul in onnxruntime (CPU) with the right operand as an initializer, as in the exported graphs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from runtime.backends.onnx import create_session

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    session = create_session(model.SerializeToString(), torch.device("cpu"), "fp32")
    a = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    del onnx
    return 2 * n**3 / _best_seconds(lambda: session.run(None, {"a": a}), repeats) / 1e9


def matmul_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 3, device: str = "cpu") -> dict[str, float]:
    """GFLOP/s of an n×n×n matmul per library (2·n³ FLOPs, best of `repeats`); the floor is the max."""
    results = {}
    if dtype == torch.float32 and device == "cpu":
        # First, and after a pause: torch's OpenMP threads spin-wait after a torch op and would steal the cores
        # from onnxruntime's thread pool (measured 274 instead of ~450 GFLOP/s right after a torch.mm).
        time.sleep(1.0)
        results["onnxruntime MatMul"] = ort_matmul_gflops(n, repeats)
    results["torch.mm"] = torch_matmul_gflops(dtype, n, repeats, device)
    return results
