"""The exported function: (pixel_values (B,3,T,H,W) float, patch_positions (B,L,3) int64) -> last_hidden_state."""

from __future__ import annotations

import torch
from torch import nn

from models import OneVisionEncoderModel

INPUT_NAMES = ("pixel_values", "patch_positions")
OUTPUT_NAMES = ("last_hidden_state",)


class EncoderExport(nn.Module):
    """sdpa attention, explicit positions (RoPE computed in float32 inside the graph), optional early stop.

    `output_layer` follows Python indexing over the encoder's hidden states: -1 (default) is the last layer,
    -2 the penultimate one; layers after it are not computed.
    """

    def __init__(self, model: OneVisionEncoderModel, output_layer: int = -1) -> None:
        super().__init__()
        n = model.config.num_hidden_layers
        if not -n <= output_layer <= n or output_layer == 0:
            raise ValueError(f"output_layer must be in [-{n}, -1] or [1, {n}], got {output_layer}")
        self.num_layers = output_layer if output_layer > 0 else n + 1 + output_layer
        self.model = model
        self.model.set_attn_implementation("sdpa")
        self.model.embeddings.export_as_conv3d = True

    def forward(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values, patch_positions=patch_positions, num_layers=self.num_layers, return_dict=True)
        return out.last_hidden_state  # type: ignore[union-attr,no-any-return,unused-ignore]
