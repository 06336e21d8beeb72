"""The pass rule, with its constants read from ONE versioned file: parity/tolerances.json.

Every comparison row is (output under test A at precision pa) against (reference R at precision pr). The suite
computes a float64 golden G (the eager model in float64) for every case and input, and measures

    e_A = rel_l2(eager sdpa at pa, G)    the inherent error of running this model at the artifact's precision
    e_R = rel_l2(R, G)                   the reference's own error (0 when R is the golden itself)

and the same two quantities for the worst per-token angle (theta_A, theta_R). A row passes when

    A has no NaN/Inf, and
    rel_l2(A, R)    <= k_rel_l2 * max(e_A, e_R)         + floor_rel_l2
    max_angle(A, R) <= k_angle  * max(theta_A, theta_R) + floor_angle

with (k_rel_l2, floor_rel_l2, k_angle, floor_angle) looked up by "pa/pr" in tolerances.json. In words: the artifact
may be at most k times as far from the reference as eager PyTorch at the same precision is from exact arithmetic.
Against the golden ("pa/fp64") this is the calibrated rule itself; against a reference R the triangle inequality
|A - R| <= |A - G| + |G - R| gives the bound (k_golden + 1) * max(e_A, e_R), which is why the non-golden rows use
k + 1. max_abs / mean_abs / p99.9 are reported, not gated: in bf16 a few outlier elements of large activations
differ by hundreds between correct backends while the mean stays tiny.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.metrics import Metrics

DEFAULT_PATH = Path(__file__).with_name("tolerances.json")
RULE_FIELDS = ("k_rel_l2", "floor_rel_l2", "k_angle", "floor_angle")


class ToleranceError(ValueError):
    """tolerances.json is missing, malformed, or has no rule for a (artifact precision, reference precision)."""


@dataclass(frozen=True)
class Rule:
    key: str
    k_rel_l2: float
    floor_rel_l2: float
    k_angle: float
    floor_angle: float
    why: str = ""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    bound_rel_l2: float
    bound_angle: float
    ratio: float  # rel_l2 / bound_rel_l2 (> 1 fails); the headline "how close to failing" number
    reason: str  # empty on pass

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "bound_rel_l2": self.bound_rel_l2,
            "bound_angle": self.bound_angle,
            "ratio": self.ratio if math.isfinite(self.ratio) else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Tolerances:
    version: int
    path: Path
    rules: dict[str, Rule]
    raw: dict[str, Any]

    def rule(self, artifact_precision: str, reference_precision: str) -> Rule:
        key = f"{artifact_precision}/{reference_precision}"
        rule = self.rules.get(key)
        if rule is None:
            raise ToleranceError(
                f"{self.path} (version {self.version}) has no rule for artifact precision {artifact_precision!r} "
                f"against a {reference_precision!r} reference (key {key!r}); known: {', '.join(sorted(self.rules))}"
            )
        return rule

    def judge(
        self,
        metrics: Metrics,
        artifact_precision: str,
        reference_precision: str,
        inherent_artifact: tuple[float, float],
        inherent_reference: tuple[float, float],
    ) -> Verdict:
        """Apply the rule. inherent_* are (rel_l2, max_angle) against the float64 golden (see module docstring)."""
        rule = self.rule(artifact_precision, reference_precision)
        e_rel = max(inherent_artifact[0], inherent_reference[0])
        e_ang = max(inherent_artifact[1], inherent_reference[1])
        bound_rel = rule.k_rel_l2 * e_rel + rule.floor_rel_l2
        bound_ang = rule.k_angle * e_ang + rule.floor_angle
        if metrics.nonfinite:
            return Verdict(False, bound_rel, bound_ang, math.inf, f"{metrics.nonfinite} NaN/Inf values in the output")
        reasons = []
        if not metrics.rel_l2 <= bound_rel:
            reasons.append(f"rel_l2 {metrics.rel_l2:.3g} > {bound_rel:.3g}")
        if not metrics.max_angle <= bound_ang:
            reasons.append(
                f"worst-token angle {metrics.max_angle:.3g} rad (cos {metrics.min_cos:.6f}, token "
                f"{metrics.worst_token}) > {bound_ang:.3g}"
            )
        ratio = max(metrics.rel_l2 / bound_rel, metrics.max_angle / bound_ang)
        return Verdict(not reasons, bound_rel, bound_ang, ratio, "; ".join(reasons))


def load_tolerances(path: str | Path | None = None) -> Tolerances:
    """Read and check tolerances.json (default: the one beside this module)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToleranceError(f"{path}: no tolerance file") from None
    except json.JSONDecodeError as exc:
        raise ToleranceError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    version = data.get("version")
    if not isinstance(version, int):
        raise ToleranceError(f"{path}: needs an integer 'version' field")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, dict) or not raw_rules:
        raise ToleranceError(f"{path}: needs a non-empty 'rules' object keyed 'artifact/reference' precision")
    rules = {}
    for key, entry in raw_rules.items():
        if key.count("/") != 1 or not isinstance(entry, dict):
            raise ToleranceError(f"{path}: rule {key!r} must be keyed 'pa/pr' and hold an object")
        missing = [f for f in RULE_FIELDS if not isinstance(entry.get(f), (int, float))]
        if missing:
            raise ToleranceError(f"{path}: rule {key!r} lacks numeric {', '.join(missing)}")
        if any(entry[f] < 0 for f in RULE_FIELDS):
            raise ToleranceError(f"{path}: rule {key!r} has a negative constant")
        if not str(entry.get("why", "")).strip():
            raise ToleranceError(f"{path}: rule {key!r} needs a written 'why' (how its constants were calibrated)")
        k_rel, floor_rel, k_ang, floor_ang = (float(entry[f]) for f in RULE_FIELDS)
        rules[key] = Rule(key, k_rel, floor_rel, k_ang, floor_ang, why=str(entry["why"]))
    return Tolerances(version, path, rules, data)
