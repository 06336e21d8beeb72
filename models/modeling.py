"""`OneVisionEncoderModel`: the lang variant of the OneVision encoder as a transformers `PreTrainedModel`."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from contract.errors import CheckpointError, InputError
from contract.packing import flatten_patches

from .attention import ALWAYS_AVAILABLE
from .checkpoint import check_weights, load_config
from .configuration import OneVisionEncoderConfig
from .packing import Packing
from .rope import VideoRotaryEmbeddingSplit466, apply_rotary


def make_norm(config: OneVisionEncoderConfig) -> nn.Module:
    if config.layer_norm_type == "rms_norm":
        return nn.RMSNorm(config.hidden_size, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


def fp32_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b of bf16/fp16 tensors as an fp32 GEMM on the same values, rounded once to a's dtype: the arithmetic of
    ATen's half-precision matmul (exact products, fp32 sums, one rounding) up to the order of the sums, for CPUs where
    ATen's own runs on a slow fallback (models.eager.fp32_gemm_linears)."""
    return torch.matmul(a.float(), b.float()).to(a.dtype)


def eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    matmul: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.matmul,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's exact numerics: scores scaled after the matmul, softmax in the input dtype (no fp32 upcast).
    `matmul`: how its two matmuls are computed (`fp32_matmul` for fp32 GEMMs)."""
    weights = matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return matmul(weights, value).transpose(1, 2).contiguous(), weights


def sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Non-causal `scaled_dot_product_attention`: the same call transformers makes, without its shape-dependent
    branches (they put guards on the token count into exported graphs)."""
    out = nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=False
    )
    return out.transpose(1, 2).contiguous(), None


class OneVisionEncoderEmbeddings(nn.Module):
    # How the patch embedding is written (the same weights, the same function):
    # - "conv2d": the model's own, per frame (B*T, C, H, W);
    # - "conv3d": a (1, p, p) Conv3d over (B, C, T, H, W): bit-identical on the CPU (checked full-size, fp32 and bf16)
    #   and free of the B*T reshape that makes torch.export specialise T=1 (every exporter's default);
    # - "matmul": each patch flattened (`flatten_patches`) times the weights as a (hidden, C*p*p) matrix: what ONNX
    #   opsets before 22 can express in bf16 (Conv takes bf16 from opset 22 only, TensorRT 10.0's parser reads up
    #   to opset 20), and what the packed entry point computes on its (N, C*p*p) patches.
    FORMS = ("conv2d", "conv3d", "matmul")

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.embed_dim = config.hidden_size
        self.patch_size = config.patch_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        self.form = "conv2d"  # exporters set another (FORMS)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(..., C*p*p) flattened patches -> (..., hidden): the patch embedding as a matrix product."""
        return nn.functional.linear(patches, self.patch_embedding.weight.flatten(1))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, T, H, W) -> (B, T*(H/p)*(W/p), hidden), frame-major then row-major."""
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(2)
        if self.form == "matmul":
            return self.embed_patches(flatten_patches(pixel_values, self.patch_size))
        if self.form == "conv3d":
            weight = self.patch_embedding.weight.unsqueeze(2)
            out = nn.functional.conv3d(pixel_values, weight, stride=(1, self.patch_size, self.patch_size))
            return out.permute(0, 2, 3, 4, 1).reshape(out.shape[0], -1, self.embed_dim)
        b, c, t, h, w = pixel_values.shape
        frames = pixel_values.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        patches = self.patch_embedding(frames).flatten(2).transpose(1, 2)
        return patches.reshape(b, t * (h // self.patch_size) * (w // self.patch_size), self.embed_dim)


class OneVisionEncoderAttention(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = False
        self.fp32_gemm = False  # eager attention's matmuls as fp32 GEMMs (models.eager.fp32_gemm_linears)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def _interface(self) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
        impl = self.config._attn_implementation or "eager"
        if impl == "sdpa":
            return sdpa_attention
        if impl == "eager" and self.fp32_gemm:
            return functools.partial(eager_attention, matmul=fp32_matmul)
        return ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention)  # type: ignore[no-any-return,unused-ignore]

    def forward(
        self,
        hidden_states: torch.Tensor,
        rotary_pos_emb: torch.Tensor | None = None,
        packing: Packing | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`packing`: the tokens are B items packed into one sequence (models/packing.py): each attends within its
        own item (sdpa semantics)."""
        b, n, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        if rotary_pos_emb is not None:
            q, k = apply_rotary(q, k, rotary_pos_emb)
        if packing is not None:
            return self.out_proj(packing.attend(q, k, v, self.scale).reshape(b, n, self.embed_dim)), None
        out, weights = self._interface()(
            self,
            q,
            k,
            v,
            None,
            is_causal=False,
            scaling=self.scale,
            dropout=self.attention_dropout if self.training else 0.0,
            **kwargs,
        )
        return self.out_proj(out.reshape(b, n, self.embed_dim)), weights


class OneVisionEncoderMLP(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))  # type: ignore[no-any-return,unused-ignore]


class OneVisionEncoderEncoderLayer(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.self_attn = OneVisionEncoderAttention(config)
        self.layer_norm1 = make_norm(config)
        self.mlp = OneVisionEncoderMLP(config)
        self.layer_norm2 = make_norm(config)

    def forward(
        self, hidden_states: torch.Tensor, rotary_pos_emb: torch.Tensor | None = None, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn, weights = self.self_attn(self.layer_norm1(hidden_states), rotary_pos_emb=rotary_pos_emb, **kwargs)
        hidden_states = hidden_states + attn
        hidden_states = hidden_states + self.mlp(self.layer_norm2(hidden_states))
        return hidden_states, weights


class OneVisionEncoderEncoder(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(OneVisionEncoderEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self,
        hidden_states: torch.Tensor,
        rotary_pos_emb: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        num_layers: int | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        all_hidden: tuple[torch.Tensor, ...] | None = () if output_hidden_states else None
        all_attn: tuple[torch.Tensor | None, ...] | None = () if output_attentions else None
        for layer in self.layers[:num_layers]:
            if all_hidden is not None:
                all_hidden += (hidden_states,)
            hidden_states, weights = layer(hidden_states, rotary_pos_emb=rotary_pos_emb, **kwargs)
            if all_attn is not None:
                all_attn += (weights,)
        if all_hidden is not None:
            all_hidden += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden, attentions=all_attn)


def take_indices(num_layers: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """timm's `feature_take_indices` over the encoder's hidden states 0..num_layers (0 = the embeddings after
    layernorm_pre, k = the output of k encoder layers): `None` takes all, an int n the last n, a sequence those
    indices (negative ones count from the end, -1 = the last layer). Returns (sorted indices, highest index)."""
    count = num_layers + 1
    if indices is None:
        indices = count
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise InputError(f"indices: expected how many last hidden states to take, in [1, {count}], got {indices}")
        taken = list(range(count - indices, count))
    else:
        taken = []
        for i in indices:
            if not -count <= i < count:
                raise InputError(f"indices: hidden state {i} is out of range [-{count}, {count - 1}]")
            taken.append(i % count)
        if not taken:
            raise InputError("indices: expected at least one hidden state, got an empty sequence")
        taken = sorted(set(taken))
    return taken, taken[-1]


def layers_for_output(output_layer: int, num_layers: int) -> int:
    """The output-layer rule: how many encoder layers produce hidden state `output_layer` (Python indexing over the
    hidden states without the embeddings: -1 = the last layer, -2 the penultimate; 1..num_layers count from the first).
    """
    if isinstance(output_layer, bool) or not isinstance(output_layer, int):
        raise InputError(f"output_layer must be an int, got {type(output_layer).__name__}")
    if not -num_layers <= output_layer <= num_layers or output_layer == 0:
        raise InputError(f"output_layer must be in [-{num_layers}, -1] or [1, {num_layers}], got {output_layer}")
    return output_layer if output_layer > 0 else num_layers + 1 + output_layer


class OneVisionEncoderPreTrainedModel(PreTrainedModel):
    config_class = OneVisionEncoderConfig
    base_model_prefix = "onevision_encoder"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False
    _no_split_modules = ["OneVisionEncoderEncoderLayer"]  # noqa: RUF012 (transformers API)
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers 5 builds on the meta device and never restores non-persistent buffers: recompute RoPE here.
        if isinstance(module, VideoRotaryEmbeddingSplit466):
            module.reset_inv_freqs()
        else:
            super()._init_weights(module)

    @classmethod
    def from_pretrained(  # type: ignore[override,unused-ignore]
        cls, pretrained_model_name_or_path: str | os.PathLike[str], *args: Any, **kwargs: Any
    ) -> Any:
        """Load a checkpoint directory; a local directory is validated first (strict keys, safetensors only).

        `attn_implementation=` wins over the config's choice; without it, a config asking for an attention this
        machine cannot run (FlashAttention without flash-attn or a GPU) loads with sdpa and one warning line.
        """
        if os.path.isdir(pretrained_model_name_or_path):
            validate_checkpoint_dir(pretrained_model_name_or_path)
            kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


class OneVisionEncoderModel(OneVisionEncoderPreTrainedModel):
    """OneVision encoder, lang variant: `last_hidden_state` is the last layer's output, no post-norm, no head."""

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        config.validate()
        super().__init__(config)
        self.config: OneVisionEncoderConfig = config
        self.embeddings = OneVisionEncoderEmbeddings(config)
        self.layernorm_pre = make_norm(config)
        self.encoder = OneVisionEncoderEncoder(config)
        self.video_rope = VideoRotaryEmbeddingSplit466(config)
        self.layernorm_post = None
        self.head = None
        self.post_init()
        self.video_rope.reset_inv_freqs()

    def _check_pixels(self, pixel_values: torch.Tensor) -> tuple[int, int, int, int]:
        if not isinstance(pixel_values, torch.Tensor):
            raise InputError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if pixel_values.dim() not in (4, 5):
            raise InputError(
                "pixel_values must have rank 4 (B, C, H, W) or 5 (B, C, T, H, W), "
                f"got shape {tuple(pixel_values.shape)}"
            )
        if not pixel_values.is_floating_point():
            raise InputError(f"pixel_values must be a floating-point tensor, got {pixel_values.dtype}")
        b, c = pixel_values.shape[:2]
        t = pixel_values.shape[2] if pixel_values.dim() == 5 else 1
        h, w = pixel_values.shape[-2:]
        p = self.config.patch_size
        if isinstance(h, int) and isinstance(w, int):
            if c != self.config.num_channels:
                raise InputError(f"pixel_values: expected {self.config.num_channels} channels (dim 1), got {c}")
            if h % p or w % p or h == 0 or w == 0:
                raise InputError(f"pixel_values: H and W must be positive multiples of {p}, got H={h}, W={w}")
        return b, t, h // p, w // p

    def _rope_freqs(
        self,
        pixel_values: torch.Tensor,
        grid: tuple[int, int, int, int],
        patch_positions: torch.Tensor | None,
        visible_indices: torch.Tensor | None,
    ) -> torch.Tensor:
        b, t, hp, wp = grid
        n = t * hp * wp if visible_indices is None else visible_indices.shape[1]
        if patch_positions is not None:
            # Under torch.jit.trace sizes are 0-dim tensors (so the trace stays shape-generic): the size checks below
            # run on Python ints only; a traced artifact's inputs are checked by the runtime before the graph runs.
            tracing = torch.jit.is_tracing()
            if patch_positions.dim() != 3 or (not tracing and patch_positions.shape[-1] != 3):
                raise InputError(
                    f"patch_positions must have shape (B, L, 3) holding [t, h, w], got {tuple(patch_positions.shape)}"
                )
            if patch_positions.is_floating_point() or patch_positions.is_complex():
                raise InputError(f"patch_positions must be an integer tensor, got {patch_positions.dtype}")
            lp = patch_positions.shape[1]
            if isinstance(lp, int) and isinstance(n, int):
                if patch_positions.shape[0] != b or lp != n:
                    what = "the selected tokens (visible_indices)" if visible_indices is not None else "T*(H/p)*(W/p)"
                    raise InputError(
                        f"patch_positions: expected shape ({b}, {n}, 3) with one row per token of {what}, "
                        f"got {tuple(patch_positions.shape)}"
                    )
            elif not tracing:
                torch._check(lp == n)
            return self.video_rope.forward_from_positions(patch_positions)
        # Default grid: frames 0..T-1 of a `rope_temporal_size`-long timeline (a single image is frame 0).
        frames = self.config.rope_temporal_size if pixel_values.dim() == 5 else 1
        if frames is not None and isinstance(t, int) and t > frames:
            raise InputError(
                f"pixel_values has {t} frames but the grid path covers rope_temporal_size={frames}; "
                "pass explicit patch_positions for longer clips"
            )
        freqs = self.video_rope(t, hp, wp, device=pixel_values.device)
        if visible_indices is not None:
            return freqs[visible_indices]
        return freqs.unsqueeze(0).expand(b, -1, -1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_layers: int | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling | tuple[torch.Tensor, ...]:
        """Encode `pixel_values` (B, C, H, W) or (B, C, T, H, W).

        visible_indices: optional (B, N) indices of the tokens to keep (token dropping); the kept tokens attend
            only to each other and keep their grid positions.
        patch_positions: optional (B, N or L, 3) integer [t, h, w] per encoded token; replaces the default grid.
        num_layers: run only the first `num_layers` encoder layers (e.g. 23 for the penultimate layer).
        """
        output_attentions = bool(output_attentions if output_attentions is not None else self.config.output_attentions)
        output_hidden_states = bool(
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        hidden_states, freqs = self._embed(pixel_values, visible_indices, patch_positions)
        out = self.encoder(
            hidden_states,
            rotary_pos_emb=freqs,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            num_layers=num_layers,
            **kwargs,
        )
        result = BaseModelOutputWithPooling(
            last_hidden_state=out.last_hidden_state,
            pooler_output=None,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return result if return_dict else result.to_tuple()

    def _embed(
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked inputs -> (hidden state 0: patch embeddings after layernorm_pre, RoPE frequencies per token)."""
        grid = self._check_pixels(pixel_values)
        if visible_indices is not None:
            self._check_visible(visible_indices, grid)
        freqs = self._rope_freqs(pixel_values, grid, patch_positions, visible_indices)
        freqs = torch.cat((freqs, freqs), dim=-1)

        hidden_states = self.layernorm_pre(self.embeddings(pixel_values))
        if visible_indices is not None:
            index = visible_indices.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
            hidden_states = hidden_states.gather(1, index)
        return hidden_states, freqs

    def layers_for_output(self, output_layer: int) -> int:
        """How many encoder layers an output taken at `output_layer` runs (see `layers_for_output`)."""
        return layers_for_output(output_layer, self.config.num_hidden_layers)

    def forward_intermediates(
        self,
        pixel_values: torch.Tensor,
        patch_positions: torch.Tensor | None = None,
        visible_indices: torch.Tensor | None = None,
        *,
        indices: int | Sequence[int] | None = None,
        stop_early: bool = True,
        intermediates_only: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, list[torch.Tensor]] | list[torch.Tensor]:
        """timm-style: the hidden states `indices` selects, and the last hidden state computed.

        Hidden state k is the residual stream after k encoder layers (0 = the embeddings after layernorm_pre; the
        lang variant has no post-norm, so hidden state N is `last_hidden_state`). `indices` as in `take_indices`
        (None: all, an int n: the last n, a sequence: those, negative from the end). `stop_early` (default) runs only
        the layers up to the highest index taken, so the returned last hidden state is that one; otherwise every
        layer runs. Returns (last, intermediates), or the intermediates alone with `intermediates_only`. Same
        numerics as `forward`: the same modules, in the same order.
        """
        n = self.config.num_hidden_layers
        taken, highest = take_indices(n, indices)
        hidden_states, freqs = self._embed(pixel_values, visible_indices, patch_positions)
        layers = highest if stop_early else n
        # All hidden states are recorded only when more than the last one is wanted: an exported "stop after layer
        # k" graph (one index, stop_early) is the plain encoder call truncated to k layers.
        record = taken != [layers]
        out = self.encoder(
            hidden_states, rotary_pos_emb=freqs, output_hidden_states=record, num_layers=layers, **kwargs
        )
        last = out.last_hidden_state
        intermediates = [out.hidden_states[i] for i in taken] if record and out.hidden_states else [last]
        return intermediates if intermediates_only else (last, intermediates)

    def forward_packed(
        self,
        pixel_patches: torch.Tensor,
        patch_positions: torch.Tensor,
        cu_seqlens: torch.Tensor,
        *,
        attention: str = "mask",
        num_layers: int | None = None,
    ) -> torch.Tensor:
        """B items of different shapes in one call (contract/packing.py): flat patches (N*C*p*p,), flat [t, h, w]
        positions (N*3,) and the items' offsets (B+1,) -> last_hidden_state (N, hidden), each item's tokens attending
        only to each other (sdpa semantics; `attention`: "mask" or "padded", models/packing.py). Item i's rows equal
        the item run alone through `forward` with its positions, up to the float rounding of another kernel shape."""
        c, p = self.config.num_channels, self.config.patch_size
        patches = pixel_patches.reshape(-1, c * p * p)
        positions = patch_positions.reshape(-1, 3)
        packing = Packing.from_offsets(cu_seqlens, positions, attention)
        hidden = self.layernorm_pre(self.embeddings.embed_patches(patches))[None]
        freqs = self.video_rope.forward_from_positions(positions)
        freqs = torch.cat((freqs, freqs), dim=-1)[None]
        out = self.encoder(hidden, rotary_pos_emb=freqs, num_layers=num_layers, packing=packing)
        return out.last_hidden_state[0]

    def _check_visible(self, visible_indices: torch.Tensor, grid: tuple[int, int, int, int]) -> None:
        b, t, hp, wp = grid
        if visible_indices.dim() != 2:
            hint = " (did you mean patch_positions=?)" if visible_indices.dim() == 3 else ""
            raise InputError(
                f"visible_indices must have shape (B, N) of token indices, got {tuple(visible_indices.shape)}{hint}"
            )
        if visible_indices.is_floating_point():
            raise InputError(f"visible_indices must be an integer tensor, got {visible_indices.dtype}")
        total = t * hp * wp
        if visible_indices.shape[0] != b:
            raise InputError(f"visible_indices: expected batch {b}, got {visible_indices.shape[0]}")
        if visible_indices.numel() and (int(visible_indices.min()) < 0 or int(visible_indices.max()) >= total):
            raise InputError(
                f"visible_indices must lie in [0, {total}) (the {total} tokens of the input), got values in "
                f"[{int(visible_indices.min())}, {int(visible_indices.max())}]"
            )


def expected_shapes(config: OneVisionEncoderConfig) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape for a config, built on the meta device (no memory) with the model's own eager
    attention: no attention backend is looked up or imported, whatever the config asks for."""
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = OneVisionEncoderModel(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def validate_checkpoint_dir(directory: str | os.PathLike[str]) -> OneVisionEncoderConfig:
    """Check a checkpoint directory completely before any tensor is loaded; raise one `CheckpointError`."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: not a directory")
    config = load_config(directory)
    check_weights(directory, expected_shapes(config))
    return config


def load_model(
    directory: str | os.PathLike[str],
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    device: str | torch.device = "cpu",
) -> OneVisionEncoderModel:
    """Validate and load a checkpoint directory into `OneVisionEncoderModel` (eval mode). The attention is always
    explicit here (what every CLI of the bundle uses), so the config's own choice never applies."""
    if attn_implementation not in ALWAYS_AVAILABLE:
        raise CheckpointError(f"attn_implementation must be one of {ALWAYS_AVAILABLE}, got {attn_implementation!r}")
    model = OneVisionEncoderModel.from_pretrained(directory, dtype=dtype, attn_implementation=attn_implementation)
    return model.to(device).eval()
