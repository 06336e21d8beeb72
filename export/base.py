"""The one small interface every artifact kind implements (one module per kind)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from contract.manifest import Manifest
from contract.profiles import Profile


class ExportError(RuntimeError):
    """An artifact cannot be built here; the message is one line saying what is missing or wrong."""


@dataclass
class BuildRequest:
    model_dir: Path
    precision: str  # "fp32" | "bf16" | "fp16"
    profiles: list[Profile]  # one for torch/ONNX kinds (the first); TensorRT builds one optimisation profile each
    out_dir: Path
    output_layer: int = -1
    device: str = "cpu"  # "cpu" | "cuda"
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific (e.g. trt: opt_level, tf32, timing_cache)
    overwrite: bool = False  # replace an existing artifact (and its manifest); refused otherwise

    @property
    def profile(self) -> Profile:
        return self.profiles[0]


@dataclass
class BuildResult:
    kind: str
    path: Path
    manifest: Manifest
    seconds: float
    peak_rss_mib: float


class Builder(Protocol):
    kind: str

    def unavailable(self, request: BuildRequest) -> str | None:
        """None if this machine can build the request, else one line saying what is missing."""

    def build(self, request: BuildRequest) -> BuildResult: ...
