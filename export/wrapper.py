"""The exported functions: batched (pixel_values (B,3,T,H,W) float, patch_positions (B,L,3) int64) ->
last_hidden_state (B,L,hidden), and packed (pixel_patches, patch_positions, cu_seqlens: contract/packing.py) ->
last_hidden_state (N,hidden)."""

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


class EncoderPackedExport(EncoderExport):
    """The packed entry point (`OneVisionEncoderModel.forward_packed`) with the batched wrapper's settings, attending
    within each item by `attention` ("mask" or "padded", models/packing.py); traced with the rows layout (N, C*p*p)
    and (N, 3) (contract/packing.py; an ONNX graph gets its flat boundary afterwards: export/onnx_model.py)."""

    def __init__(self, model: OneVisionEncoderModel, output_layer: int, attention: str) -> None:
        super().__init__(model, output_layer)
        self.attention = attention

    def forward(  # type: ignore[override]
        self, pixel_patches: torch.Tensor, patch_positions: torch.Tensor, cu_seqlens: torch.Tensor
    ) -> torch.Tensor:
        return self.model.forward_packed(
            pixel_patches, patch_positions, cu_seqlens, attention=self.attention, num_layers=self.num_layers
        )


def load_wrapper(
    model_dir: str | os.PathLike[str],
    precision: str,
    output_layer: int,
    device: str = "cpu",
    packed: str | None = None,
) -> EncoderExport:
    """The eval-mode export wrapper in `precision` on `device` (sdpa, explicit positions, `output_layer`); `packed`:
    the packed entry point with that attention ("mask" | "padded")."""
    model: OneVisionEncoderModel = load_model(model_dir, dtype_of(precision), "sdpa", device=device)
    model.requires_grad_(False)
    try:
        if packed is None:
            return EncoderExport(model, output_layer).eval()
        return EncoderPackedExport(model, output_layer, packed).eval()
    except ValueError as exc:
        raise ExportError(str(exc)) from None
