"""Remote-code model shipped in the bundle's synthetic checkpoints (the bundle's own code, not upstream's): a compact,
independent implementation of the lang encoder's forward pass, so that a synthetic checkpoint carries the remote code
its `auto_map` names, and `python -m parity --remote-reference` compares against a second implementation.

Parameter names follow the checkpoint layout. Attention is written out by hand (scores, softmax in float32),
RoPE angles are float32 [t, h, w] x inverse frequencies split 4:6:6, applied to interleaved pairs.
"""

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_onevision_encoder import OneVisionEncoderConfig


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        cos, sin = angles.cos()[:, None].to(x.dtype), angles.sin()[:, None].to(x.dtype)

        def rotate(t: torch.Tensor) -> torch.Tensor:
            even, odd = t[..., 0::2], t[..., 1::2]
            swapped = torch.stack((-odd, even), dim=-1).reshape(t.shape)
            return t * cos + swapped * sin

        q, k = rotate(q), rotate(k)
        scores = (q.float() @ k.float().transpose(-1, -2)) * (d // self.heads) ** -0.5
        out = scores.softmax(dim=-1).to(v.dtype) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        d, eps = config.hidden_size, config.layer_norm_eps
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.self_attn = _Attention(d, config.num_attention_heads)
        self.mlp = _Mlp(d, config.intermediate_size)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), angles)
        return x + self.mlp(self.layer_norm2(x))


class _Embeddings(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, p, stride=p, bias=False)


class _Encoder(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block(config) for _ in range(config.num_hidden_layers))


class OneVisionEncoderModel(PreTrainedModel):
    config_class = OneVisionEncoderConfig
    base_model_prefix = "onevision_encoder"
    main_input_name = "pixel_values"

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        if config.use_head or config.layer_norm_type != "layer_norm":
            raise ValueError("this implementation covers the lang variant: use_head false, layer_norm_type layer_norm")
        super().__init__(config)
        self.embeddings = _Embeddings(config)
        self.layernorm_pre = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = _Encoder(config)
        self.post_init()

    def _angles(self, positions: torch.Tensor) -> torch.Tensor:
        half = self.config.hidden_size // self.config.num_attention_heads // 2
        sizes = (half // 4, 3 * half // 8, 3 * half // 8)  # t:h:w = 4:6:6
        parts = []
        for axis, n in enumerate(sizes):
            inv = 1.0 / (self.config.rope_theta ** (torch.arange(n, dtype=torch.float32) / n))
            parts.append(positions[..., axis : axis + 1].float() * inv.to(positions.device))
        angles = torch.cat(parts, dim=-1)
        return torch.cat((angles, angles), dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        patch_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        x = pixel_values if pixel_values.dim() == 5 else pixel_values.unsqueeze(2)
        b, c, t, h, w = x.shape
        p = self.config.patch_size
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        tokens = self.embeddings.patch_embedding(frames).flatten(2).transpose(1, 2)
        tokens = tokens.reshape(b, -1, self.config.hidden_size)
        if patch_positions is None:
            tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h // p), torch.arange(w // p), indexing="ij")
            patch_positions = torch.stack((tt, hh, ww), -1).reshape(1, -1, 3).expand(b, -1, -1).to(x.device)
        angles = self._angles(patch_positions)
        hidden = self.layernorm_pre(tokens)
        states = [hidden]
        for layer in self.encoder.layers:
            hidden = layer(hidden, angles)
            states.append(hidden)
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(states) if output_hidden_states else None)
