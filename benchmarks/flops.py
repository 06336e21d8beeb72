"""FLOPs of one encoder forward, counted from the architecture (multiply-add = 2 FLOPs)."""

from __future__ import annotations

from models import OneVisionEncoderConfig


def encoder_flops(config: OneVisionEncoderConfig, tokens: int, batch: int = 1, layers: int | None = None) -> float:
    """Per layer: 2·L·(4·d² + 2·d·d_ff) for the linear layers plus 4·L²·d for attention (QKᵀ and AV);
    plus the patch embedding 2·L·(C·p²)·d. RoPE, norms, softmax and GELU are not counted (< 1 %)."""
    d, ff, n = config.hidden_size, config.intermediate_size, tokens
    per_layer = 2 * n * (4 * d * d + 2 * d * ff) + 4 * n * n * d
    patch = 2 * n * config.num_channels * config.patch_size**2 * d
    return float(batch * ((layers or config.num_hidden_layers) * per_layer + patch))
