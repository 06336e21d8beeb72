"""`OneVisionEncoderConfig`: the published config surface (fields and defaults of OneVision-Encoder-large-lang)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from .errors import CheckpointError

MODEL_TYPE = "onevision_encoder"
LAYER_NORM_TYPES = ("layer_norm", "rms_norm")


class OneVisionEncoderConfig(PretrainedConfig):
    """Configuration of the OneVision encoder (ViT with 3D RoPE).

    Defaults are those of the published `OneVision-Encoder-large-lang` checkpoint (ViT-L/14, 448 px, no pooling
    head). `rope_temporal_size` is the length of the temporal grid the default (grid) positions index into: video
    frames 0..T-1 map to t = 0..T-1, so at most `rope_temporal_size` frames can use the grid path.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        hidden_size: int = 1024,
        intermediate_size: int = 4096,
        num_hidden_layers: int = 24,
        num_attention_heads: int = 16,
        num_channels: int = 3,
        image_size: int = 448,
        patch_size: int = 14,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        layer_norm_type: str = "layer_norm",
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        rope_theta: float = 10000.0,
        rope_temporal_size: int | None = 64,
        use_head: bool = False,
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

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise `CheckpointError` naming the first impossible field (expected vs got)."""

        def positive_int(name: str) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CheckpointError(f"config.{name} must be a positive integer, got {value!r}")
            return value

        hidden = positive_int("hidden_size")
        heads = positive_int("num_attention_heads")
        for name in ("intermediate_size", "num_hidden_layers", "num_channels", "patch_size", "image_size"):
            positive_int(name)
        if hidden % heads:
            raise CheckpointError(f"config.hidden_size ({hidden}) must be divisible by num_attention_heads ({heads})")
        half = hidden // heads // 2
        if (hidden // heads) % 2 or half % 16:
            raise CheckpointError(
                f"head_dim/2 must be divisible by 16 for the 4:6:6 RoPE split; got head_dim = "
                f"hidden_size/num_attention_heads = {hidden}/{heads} = {hidden // heads}"
            )
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise CheckpointError(
                f"config.layer_norm_type must be one of {LAYER_NORM_TYPES}, got {self.layer_norm_type!r}"
            )
        if not isinstance(self.rope_theta, (int, float)) or self.rope_theta <= 1:
            raise CheckpointError(f"config.rope_theta must be a number > 1, got {self.rope_theta!r}")
        if self.rope_temporal_size is not None:
            positive_int("rope_temporal_size")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise CheckpointError(f"config.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.use_head:
            raise CheckpointError(
                "config.use_head is true (the non-lang checkpoint with a pooling head); this bundle supports the "
                "lang variant only (use_head: false)"
            )
