"""Test fixture (not upstream's code): a minimal remote-code config for tests/test_parity.py's --remote-reference
test. It is copied beside config.json of a temporary checkpoint and loaded with trust_remote_code=True."""

from typing import Any

from transformers import PretrainedConfig


class OneVisionEncoderConfig(PretrainedConfig):
    model_type = "onevision_encoder"

    def __init__(
        self,
        hidden_size: int = 1024,
        intermediate_size: int = 4096,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        num_channels: int = 3,
        patch_size: int = 14,
        layer_norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.layer_norm_eps = layer_norm_eps
        self.rope_theta = rope_theta
