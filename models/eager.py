"""The one eager runner: `runner(pixel_values, patch_positions) -> last_hidden_state` over `OneVisionEncoderModel`.

Everything in the bundle that runs the eager model as a runner goes through this class: export verification (the
reference a fresh artifact is checked against), the parity suite (its eager stand-ins and its references), the
benchmarks' eager baseline and `python -m runtime embed --model`. It runs `forward_intermediates`, so "stop after
layer k" (`num_layers`) and "every hidden state" (`hidden_states`) are the model's own semantics.

TF32: `exact_fp32=True` computes every call inside `models.tf32.exact_float32()` (comparisons: export verification,
parity); `exact_fp32=False` leaves the process's settings alone (the benchmarks decide them around the timed region,
embed keeps the process's). Calls run under `torch.inference_mode()`; inputs are moved to the model's device and
pixels cast to its dtype.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from types import MethodType
from typing import Any

import torch
from torch import nn

from contract.dtypes import DTYPES

from .modeling import OneVisionEncoderAttention, OneVisionEncoderModel, load_model
from .tf32 import exact_float32


def _fp32_gemm_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    bias = None if self.bias is None else self.bias.float()
    return nn.functional.linear(x.float(), self.weight.float(), bias).to(x.dtype)


def fp32_gemm_linears(model: nn.Module) -> None:
    """Every linear layer of a bf16/fp16 model, and eager attention's two matmuls (`modeling.fp32_matmul`),
    compute their GEMMs in fp32 on the same bf16/fp16 values and round the result once: the arithmetic of a bf16
    GEMM with fp32 accumulation (exact products, fp32 sums, one rounding), which is what ATen's bf16 kernels do
    (oneDNN's with AVX-512 BF16/AMX, its own fallback without), up to the order of the sums. On a CPU without native
    bf16 the fallback runs some 25x slower than this (eager-bf16 at full size, 1 x 448²: 64 s a case with only the
    linear layers in fp32, its attention matmuls left in the fallback); measured on a 1024x1024 by 4096x1024 bf16
    GEMM: 99.99 % of the outputs bit-identical to ATen's, the rest one bf16 ulp apart, as oneDNN's own output
    differs from the fallback's."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.forward = MethodType(_fp32_gemm_forward, module)  # type: ignore[method-assign]
        elif isinstance(module, OneVisionEncoderAttention):
            module.fp32_gemm = True


class EagerRunner:
    """An eager model as a runner. `num_layers`: encoder layers the output is taken after (default: all)."""

    kind = "eager"

    def __init__(self, model: OneVisionEncoderModel, num_layers: int | None = None, exact_fp32: bool = True) -> None:
        self.model = model
        parameter = next(model.parameters())
        self.dtype = parameter.dtype
        self.device = parameter.device
        self.total_layers = int(model.config.num_hidden_layers)
        self.num_layers = self.total_layers if num_layers is None else int(num_layers)
        self.exact_fp32 = exact_fp32

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str],
        precision: str | torch.dtype = "fp32",
        attention: str = "sdpa",
        device: str | torch.device = "cpu",
        num_layers: int | None = None,
        exact_fp32: bool = True,
        perturb: Callable[[OneVisionEncoderModel], None] | None = None,
        fp32_gemm: bool = False,
    ) -> EagerRunner:
        """Validate and load a checkpoint; `perturb(model)` may modify it first (tests plant defects this way);
        `fp32_gemm`: a bf16/fp16 model's linear layers run as fp32 GEMMs (`fp32_gemm_linears`)."""
        dtype = precision if isinstance(precision, torch.dtype) else DTYPES[precision]
        model = load_model(model_dir, dtype, attention, device=device)
        if perturb is not None:
            perturb(model)
        if fp32_gemm and dtype in (torch.bfloat16, torch.float16):
            fp32_gemm_linears(model)
        return cls(model, num_layers, exact_fp32)

    def _numerics(self) -> contextlib.AbstractContextManager[Any]:
        return exact_float32() if self.exact_fp32 else contextlib.nullcontext()

    def _inputs(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor | None) -> dict[str, Any]:
        positions = None if patch_positions is None else patch_positions.to(self.device)
        return {"pixel_values": pixel_values.to(self.device, self.dtype), "patch_positions": positions}

    def __call__(
        self, pixel_values: torch.Tensor, patch_positions: torch.Tensor | None = None, num_layers: int | None = None
    ) -> torch.Tensor:
        """Hidden state `num_layers` (default: the runner's); later layers are not computed."""
        k = self.num_layers if num_layers is None else num_layers
        with torch.inference_mode(), self._numerics():
            last, _ = self.model.forward_intermediates(**self._inputs(pixel_values, patch_positions), indices=[k])
        return last

    def hidden_states(
        self, pixel_values: torch.Tensor, patch_positions: torch.Tensor | None = None, num_layers: int | None = None
    ) -> list[torch.Tensor]:
        """Hidden states 0..num_layers (0 = embeddings after layernorm_pre, k = after k layers), on the CPU."""
        k = self.num_layers if num_layers is None else num_layers
        with torch.inference_mode(), self._numerics():
            states = self.model.forward_intermediates(
                **self._inputs(pixel_values, patch_positions), indices=list(range(k + 1)), intermediates_only=True
            )
        assert isinstance(states, list)
        return [s.detach().to("cpu") for s in states]

    def close(self) -> None:
        del self.model
        gc.collect()
