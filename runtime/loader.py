"""`load(path, device=None)`: open any artifact through its manifest and return its `Runner`.

The artifact's sha256 is checked against its manifest (`read_manifest(verify=True)`) before any backend reads a
byte of it, so a missing manifest, a damaged, truncated or replaced file is refused with one `ManifestError` line.
Backends are imported lazily (only the artifact's kind is imported), so a machine without TensorRT can load ONNX.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch

from export.manifest import Manifest, read_manifest

from .base import LoadError, Runner

# manifest kind -> "module:Class" (imported on first use). The TensorRT module is owned by its own engineer.
BACKENDS: dict[str, str] = {
    "pt2": "runtime.backends.torch_export:TorchExportRunner",
    "aoti": "runtime.backends.aoti:AOTIRunner",
    "onnx": "runtime.backends.onnx:OnnxRunner",
    "trt": "runtime.backends.tensorrt:TensorRTRunner",
    "trt-rtx": "runtime.backends.tensorrt:TensorRTRTXRunner",
    "torchscript": "runtime.backends.torchscript:TorchScriptRunner",
}


def runner_class(kind: str) -> type[Runner]:
    """The Runner subclass for a manifest kind (LoadError if unknown or its module cannot be imported)."""
    spec = BACKENDS.get(kind)
    if spec is None:
        raise LoadError(f"unknown artifact kind {kind!r}; this runtime loads {sorted(BACKENDS)}")
    module_name, _, cls_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"the {kind!r} backend ({module_name}) cannot be imported here: {exc}") from None
    cls = getattr(module, cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise LoadError(f"{spec} is not a runtime.base.Runner subclass")
    return cls


def load(path: str | os.PathLike[str], device: str | torch.device | None = None, verify: bool = True) -> Runner:
    """Open an artifact (`.pt2` torch.export or AOTInductor, `.onnx`, `.engine`) by reading its manifest.

    `path` is the artifact or its `.json` manifest. `device` defaults to the artifact's own (manifest.device).
    `verify=False` skips the sha256 check (only for callers that have just checked it themselves).
    """
    artifact = Path(path)
    if artifact.suffix == ".json":
        artifact = artifact.with_suffix("")
    manifest: Manifest = read_manifest(artifact, verify=verify)
    return runner_class(manifest.kind)(artifact, manifest, device)
