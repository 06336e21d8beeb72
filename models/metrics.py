"""Distance metrics between an output and a reference, all computed in float64 on the CPU.

Per comparison (a = the output under test, r = the reference, both (B, L, hidden)):

- max_abs, mean_abs, p999_abs: max / mean / 99.9th percentile of |a - r| over every element;
- rel_l2: ||a - r|| / ||r|| over the whole tensor (Frobenius norms);
- min_cos: the smallest per-token cosine similarity cos(a_i, r_i) over the B*L tokens, and max_angle: the same
  token's angle in radians, computed as 2*atan2(|â - r̂|, |â + r̂|) (exact down to ~1e-15, where 1 - cos is not);
  worst_token: the flat index b*L + l of that token;
- nonfinite: NaN/Inf count in a (ref_nonfinite: in r; a reference with any is an error, not a pass/fail).

The pass rule uses rel_l2 and max_angle (see parity/tolerances.json); the rest are reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Metrics:
    max_abs: float
    mean_abs: float
    p999_abs: float
    rel_l2: float
    min_cos: float
    max_angle: float
    worst_token: int
    nonfinite: int
    ref_nonfinite: int
    numel: int

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        return cls(**{k: (float(v) if v is not None else math.nan) for k, v in data.items()})  # type: ignore[arg-type]


def _json_float(value: float | int) -> float | int | None:
    """JSON has no NaN/Inf: write them as null (and 'inf' never happens for the fields we write as floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _quantile(x: torch.Tensor, q: float) -> float:
    """Linear-interpolated quantile of a 1-D float64 tensor of any size (torch.quantile caps at 2^24 elements)."""
    if x.numel() == 0:
        return math.nan
    return float(np.quantile(x.numpy(), q))


def token_angles(a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Per-token angle (radians, float64) between a and r over the last dimension; 0 where both are zero."""
    a2 = a.detach().to("cpu", torch.float64).reshape(-1, a.shape[-1])
    r2 = r.detach().to("cpu", torch.float64).reshape(-1, r.shape[-1])
    na = a2.norm(dim=-1, keepdim=True)
    nr = r2.norm(dim=-1, keepdim=True)
    ua = torch.where(na > 0, a2 / na.clamp_min(1e-300), torch.zeros_like(a2))
    ur = torch.where(nr > 0, r2 / nr.clamp_min(1e-300), torch.zeros_like(r2))
    angle = 2.0 * torch.atan2((ua - ur).norm(dim=-1), (ua + ur).norm(dim=-1))
    both_zero = (na.squeeze(-1) == 0) & (nr.squeeze(-1) == 0)
    one_zero = (na.squeeze(-1) == 0) ^ (nr.squeeze(-1) == 0)
    angle = torch.where(both_zero, torch.zeros_like(angle), angle)
    return torch.where(one_zero, torch.full_like(angle, math.pi / 2), angle)


def compare(a: torch.Tensor, r: torch.Tensor) -> Metrics:
    """All metrics of `a` against the reference `r` (same shape; raises ValueError otherwise)."""
    if tuple(a.shape) != tuple(r.shape):
        raise ValueError(f"shape mismatch: output {tuple(a.shape)} vs reference {tuple(r.shape)}")
    a64 = a.detach().to("cpu", torch.float64)
    r64 = r.detach().to("cpu", torch.float64)
    nonfinite = int((~torch.isfinite(a64)).sum())
    ref_nonfinite = int((~torch.isfinite(r64)).sum())
    diff = (a64 - r64).abs().reshape(-1)
    rnorm = float(r64.norm())
    dnorm = float(diff.norm())
    rel = dnorm / rnorm if rnorm > 0 else (0.0 if dnorm == 0 else math.inf)
    if nonfinite or ref_nonfinite:
        nan = math.nan
        return Metrics(nan, nan, nan, nan, nan, nan, -1, nonfinite, ref_nonfinite, a64.numel())
    angles = token_angles(a64, r64)
    worst = int(angles.argmax()) if angles.numel() else -1
    max_angle = float(angles[worst]) if worst >= 0 else 0.0
    return Metrics(
        max_abs=float(diff.max()) if diff.numel() else 0.0,
        mean_abs=float(diff.mean()) if diff.numel() else 0.0,
        p999_abs=_quantile(diff, 0.999),
        rel_l2=rel,
        min_cos=math.cos(max_angle),
        max_angle=max_angle,
        worst_token=worst,
        nonfinite=nonfinite,
        ref_nonfinite=ref_nonfinite,
        numel=a64.numel(),
    )
