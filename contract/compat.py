"""The versions the bundle runs on, and the one place where what differs between them (or between CPUs) is asked.

Supported: torch 2.11 to 2.13 and transformers 5.17 to 5.23 (pyproject.toml states the same range). CI runs torch
2.13 with transformers 5.23 (requirements.txt) and, in `make gpu-check-rehearsal`, with transformers 5.17 (the lent
GPU machine's; requirements-gpu-machine.txt). The GPU machine's torch 2.11 cannot be installed here (its CUDA build
only), so 2.11 is covered by reading its API, not by a run: every torch call below exists in 2.11.

Capabilities of the machine, read rather than assumed:
- `native_bf16_cpu()`: ATen runs bf16 matmuls on oneDNN's bf16 kernels (AVX-512 BF16 or AMX). Without them (an AVX2
  CPU) eager bf16 falls back to a scalar path some 25x slower than fp32, which the parity suite plans around.
- `cpu_capability()`: the vector ISA ATen dispatches to ("AVX2", "AVX512", ...), which the reports name.
"""

from __future__ import annotations

import torch

TORCH_RANGE = ("2.11", "2.13")
TRANSFORMERS_RANGE = ("5.17", "5.23")


def native_bf16_cpu() -> bool:
    """True when ATen's bf16 matmuls on this CPU run on oneDNN's bf16 kernels (AVX-512 BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_capability() -> str:
    """The vector ISA ATen dispatches to on this CPU (honours ATEN_CPU_CAPABILITY)."""
    return str(torch.backends.cpu.get_cpu_capability())
