"""Measured ceilings: large-matmul throughput per precision, the floor any artifact's latency is judged against."""

from __future__ import annotations

import time

import torch


def matmul_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 3, device: str = "cpu") -> float:
    """Best-of-`repeats` GFLOP/s of an n×n×n matmul (2·n³ FLOPs)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
