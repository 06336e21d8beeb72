"""Remote-code config shipped in the bundle's synthetic checkpoints (the bundle's own code, not upstream's).

Published checkpoints carry `configuration_onevision_encoder.py` and `modeling_onevision_encoder.py` beside
config.json (its `auto_map` names them); `models.synthetic` copies these two files there so a synthetic checkpoint is
the full published layout. Loaded with trust_remote_code=True (e.g. `python -m parity --remote-reference`), they are
an independent second implementation of the lang encoder. A key config.json omits takes the published class's
default, as in upstream's config class (patch_size 16, use_head true).
"""

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
        image_size: int = 448,
        patch_size: int = 16,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        layer_norm_type: str = "layer_norm",
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        rope_theta: float = 10000.0,
        rope_temporal_size: int | None = 64,
        use_head: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_channels = num_channels
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.layer_norm_type = layer_norm_type
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.rope_theta = rope_theta
        self.rope_temporal_size = rope_temporal_size
        self.use_head = use_head
