"""The exported function: (pixel_values (B,3,T,H,W) float, patch_positions (B,L,3) int64) -> last_hidden_state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from models import OneVisionEncoderModel, load_model

from .base import ExportError
from .inputs import dtype_of


class EncoderExport(nn.Module):
    """sdpa attention, explicit positions (RoPE computed in float32 inside the graph), optional early stop.

    `output_layer` follows the model's rule (`OneVisionEncoderModel.layers_for_output`: -1 (default) is the last
    layer, -2 the penultimate one); `forward_intermediates` stops there, so later layers are not computed.
    """

    def __init__(self, model: OneVisionEncoderModel, output_layer: int = -1) -> None:
        super().__init__()
        self.num_layers = model.layers_for_output(output_layer)
        self.model = model
        self.model.set_attn_implementation("sdpa")
        self.model.embeddings.form = "conv3d"

    @contextmanager
    def patch_embedding(self, form: str) -> Iterator[None]:
        """Export with the patch embedding written as `form` (models.modeling.OneVisionEncoderEmbeddings.FORMS)."""
        embeddings = self.model.embeddings
        saved, embeddings.form = embeddings.form, form
        try:
            yield
        finally:
            embeddings.form = saved

    def forward(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        last, _ = self.model.forward_intermediates(pixel_values, patch_positions, indices=[self.num_layers])
        return last


def load_wrapper(
    model_dir: str | os.PathLike[str], precision: str, output_layer: int, device: str = "cpu"
) -> EncoderExport:
    """The eval-mode export wrapper in `precision` on `device` (sdpa, explicit positions, `output_layer`)."""
    model: OneVisionEncoderModel = load_model(model_dir, dtype_of(precision), "sdpa", device=device)
    model.requires_grad_(False)
    try:
        return EncoderExport(model, output_layer).eval()
    except ValueError as exc:
        raise ExportError(str(exc)) from None
