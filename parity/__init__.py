"""Parity suite: every artifact x a shape matrix of cases x eager PyTorch references, with a pass rule calibrated
against a float64 golden (parity/tolerances.json) and, on failure, the first layer where the error jumps.

    python -m parity --help
    from parity import SuiteConfig, run_suite, eager_artifact
"""

from models.metrics import Metrics, compare

from .artifacts import ArtifactUnderTest, EagerRunner, eager_artifact, from_file
from .cases import CASES, PACKED_CASES, CaseContext, CaseInput, PackedCase, build_case, build_packed_case
from .suite import SuiteConfig, SuiteResult, run_suite
from .tolerances import Tolerances, load_tolerances

__all__ = [
    "CASES",
    "PACKED_CASES",
    "ArtifactUnderTest",
    "CaseContext",
    "CaseInput",
    "EagerRunner",
    "Metrics",
    "PackedCase",
    "SuiteConfig",
    "SuiteResult",
    "Tolerances",
    "build_case",
    "build_packed_case",
    "compare",
    "eager_artifact",
    "from_file",
    "load_tolerances",
    "run_suite",
]
