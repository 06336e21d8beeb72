"""3D (t, h, w) rotary position embedding with the 4:6:6 frequency split, always computed in float32."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from contract.positions import grid_positions

from .configuration import OneVisionEncoderConfig

_AXES = ("t", "h", "w")


def rope_inv_freq(theta: float, n: int) -> torch.Tensor:
    """inv_freq[i] = theta^(-i/n), i = 0..n-1, in float32, computed on the CPU (identical on every device)."""
    exponent = torch.arange(n, dtype=torch.float32, device="cpu") / n
    return 1.0 / (theta**exponent)


class VideoRotaryEmbeddingSplit466(nn.Module):
    """Per-token RoPE frequencies from [t, h, w] positions.

    head_dim/2 frequencies are split t:h:w = 4:6:6 (8, 12, 12 for head_dim 64). The inverse frequencies are
    non-persistent float32 buffers; they are recomputed (never cast) whenever the module is moved or converted,
    so `model.to(torch.bfloat16)` and meta-device construction cannot degrade them.
    """

    inv_freq_t: torch.Tensor
    inv_freq_h: torch.Tensor
    inv_freq_w: torch.Tensor

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        head_dim = config.hidden_size // config.num_attention_heads
        self.head_dim = head_dim
        self.half_dim = head_dim // 2
        unit = self.half_dim // 16
        self.t_size, self.h_size, self.w_size = 4 * unit, 6 * unit, 6 * unit
        self.rope_base = float(config.rope_theta)
        for axis in _AXES:
            self.register_buffer(f"inv_freq_{axis}", self._exact(axis), persistent=False)

    def _size(self, axis: str) -> int:
        return int(getattr(self, f"{axis}_size"))

    def _exact(self, axis: str) -> torch.Tensor:
        return rope_inv_freq(self.rope_base, self._size(axis))

    def reset_inv_freqs(self) -> None:
        """Write the exact float32 inverse frequencies into the buffers (on whatever device they live)."""
        for axis in _AXES:
            buf = getattr(self, f"inv_freq_{axis}")
            exact = self._exact(axis)
            if buf.device.type == "meta":
                continue
            if buf.dtype != torch.float32:
                self._buffers[f"inv_freq_{axis}"] = exact.to(buf.device)
            else:
                with torch.no_grad():
                    buf.copy_(exact)

    def _apply(self, fn: Any, recurse: bool = True) -> VideoRotaryEmbeddingSplit466:
        super()._apply(fn, recurse)
        for axis in _AXES:
            buf = getattr(self, f"inv_freq_{axis}")
            if buf.dtype != torch.float32 and buf.device.type != "meta":
                self._buffers[f"inv_freq_{axis}"] = self._exact(axis).to(buf.device)
        return self

    def _inv_freqs(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The float32 buffers (`_apply` keeps them float32, so no cast). They are moved only when the positions live
        on another device: an exported graph records no `.to(device)`, so it stays free of any device."""
        bufs = tuple(getattr(self, f"inv_freq_{axis}") for axis in _AXES)
        if any(b.dtype != torch.float32 for b in bufs):
            raise RuntimeError("RoPE inverse frequencies must be float32 (call reset_inv_freqs after a dtype change)")
        t, h, w = (b if b.device == device else b.to(device) for b in bufs)
        return t, h, w

    def forward(self, t: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
        """Frequencies of the dense (t, h, w) grid in token order (frame-major, then row-major): (t*h*w, half)."""
        device = self.inv_freq_t.device if device is None else device
        return self.forward_from_positions(grid_positions(1, t, h, w, device=device)[0])

    def forward_from_positions(self, patch_positions: torch.Tensor) -> torch.Tensor:
        """(..., 3) integer [t, h, w] per token -> (..., half) float32 frequencies (before duplication)."""
        inv_t, inv_h, inv_w = self._inv_freqs(patch_positions.device)
        pos = patch_positions.to(torch.float32)
        return torch.cat(
            (pos[..., 0:1] * inv_t, pos[..., 1:2] * inv_h, pos[..., 2:3] * inv_w),
            dim=-1,
        )


def rotate_interleaved(x: torch.Tensor) -> torch.Tensor:
    """rot(x)[2i] = -x[2i+1], rot(x)[2i+1] = x[2i]."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k: (B, heads, L, head_dim); freqs: (B, L, head_dim) float32 (already duplicated).

    cos/sin are cast to q's dtype before the multiply (the lang-variant contract), so in bf16 the rotation
    itself runs in bf16 exactly like the published model.
    """
    cos = freqs.cos().unsqueeze(1).to(q.dtype)
    sin = freqs.sin().unsqueeze(1).to(q.dtype)
    return q * cos + rotate_interleaved(q) * sin, k * cos + rotate_interleaved(k) * sin
