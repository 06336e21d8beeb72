"""`OneVisionEncoderConfig`: the published config surface (fields and defaults of OneVision-Encoder-large-lang)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import PretrainedConfig

from contract.errors import CheckpointError

from .attention import CONFIG_KEYS, config_choice

MODEL_TYPE = "onevision_encoder"
LAYER_NORM_TYPES = ("layer_norm", "rms_norm")
# What a config.json that omits a key means: the default of the class its auto_map names (upstream's
# `configuration_onevision_encoder.OneVisionEncoderConfig`), where that differs from this class's lang defaults.
# Upstream's class describes the non-lang ViT-L/16 with a pooling head; the published lang config.json states both.
FILE_DEFAULTS: dict[str, Any] = {"patch_size": 16, "use_head": True}


class OneVisionEncoderConfig(PretrainedConfig):
    """Configuration of the OneVision encoder (ViT with 3D RoPE).

    Constructor defaults are those of the published `OneVision-Encoder-large-lang` checkpoint (ViT-L/14, 448 px, no
    pooling head). A config.json is read with `from_dict`, where a key the file omits takes upstream's class default
    (`FILE_DEFAULTS`: patch_size 16, use_head true), as the checkpoint's own code would read it.
    `rope_temporal_size` is the length of the temporal grid the default (grid) positions index into: video
    frames 0..T-1 map to t = 0..T-1, so at most `rope_temporal_size` frames can use the grid path.

    Attention: an explicit `attn_implementation=` always wins. The file's own choice (`_attn_implementation` or
    `attn_implementation`) is used only if this machine can run it, else `sdpa` with one warning (models/attention.py).
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
        # `_attn_implementation` as a key is a config file's request (transformers would set it verbatim, over an
        # explicit `attn_implementation`): honoured only when nothing explicit is given and this machine can run it.
        requested = kwargs.pop("_attn_implementation", None)
        if requested is not None and kwargs.get("attn_implementation") is None:
            kwargs["attn_implementation"] = config_choice(requested)
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

    @classmethod
    def from_dict(cls, config_dict: Mapping[str, Any], **kwargs: Any) -> Any:
        """Read a config.json's dict: omitted keys take `FILE_DEFAULTS`; the file's attention choice (either spelling)
        yields to an explicit `attn_implementation=` kwarg (what `from_pretrained`/`AutoConfig` pass on)."""
        data = {**FILE_DEFAULTS, **config_dict}
        from_file = [data.pop(key) for key in CONFIG_KEYS if key in data]
        if kwargs.get("attn_implementation") is None:
            kwargs.pop("attn_implementation", None)
            requested = next((value for value in from_file if value is not None), None)
            if requested is not None:
                data["_attn_implementation"] = requested
        return super().from_dict(data, **kwargs)

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
