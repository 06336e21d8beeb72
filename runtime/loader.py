"""`load(path, device=None)`: open any artifact through its manifest and return its `Runner`.

The artifact's sha256 is checked against its manifest (`read_manifest(verify=True)`) before any backend reads a
byte of it, so a missing manifest, a damaged, truncated or replaced file is refused with one `ManifestError` line.
Backends are imported lazily (only the artifact's kind is imported), so a machine without TensorRT can load ONNX.

Devices: each kind's `devices` in its description (contract/backends.py; `MOVABLE` here is derived from them and
checked by `check_device` before a backend is touched). A kind whose saved program names no device moves between
the CPU and CUDA (an ONNX model takes CUDA through onnxruntime's CUDA provider); any other kind runs only on the
device type its description names, or the one it was built for (the manifest's `device`; a CUDA artifact may run on
another CUDA index), and its description's `why_fixed` says why when asked for another.
Anything else is one `LoadError` naming the artifact, the device it was built for and the one asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from contract.backends import BACKENDS as DESCRIPTIONS
from contract.backends import Unresolvable, resolve
from contract.manifest import Manifest, read_manifest

from .base import LoadError, Runner

# Derived from the one description of each backend (contract/backends.py): kind -> "module:Class" of its runner
# (imported on first use), the device types it runs on (None: only the one it was built for), and why it cannot move.
BACKENDS: dict[str, str] = {kind: b.runner for kind, b in DESCRIPTIONS.items()}
MOVABLE: dict[str, tuple[str, ...] | None] = {kind: b.devices for kind, b in DESCRIPTIONS.items()}
WHY_FIXED: dict[str, str] = {kind: b.why_fixed for kind, b in DESCRIPTIONS.items() if b.why_fixed}


def check_device(artifact: Path, manifest: Manifest, device: str | torch.device) -> None:
    """Refuse, in one line, a device this kind of artifact cannot run on (see the module docstring)."""
    asked = torch.device(device).type
    allowed = MOVABLE.get(manifest.kind, (manifest.device,))
    if allowed is None:
        allowed = (torch.device(manifest.device).type,)
    if asked not in allowed:
        why = WHY_FIXED.get(manifest.kind, f"{manifest.kind} artifacts run on {', '.join(allowed)}").format(asked=asked)
        raise LoadError(
            f"{artifact}: this {manifest.kind} artifact was built for {manifest.device} and cannot run on {device} "
            f"({why})"
        )


def runner_class(kind: str) -> type[Runner]:
    """The Runner subclass for a manifest kind (LoadError if unknown or its module cannot be imported)."""
    spec = BACKENDS.get(kind)
    if spec is None:
        raise LoadError(f"unknown artifact kind {kind!r}; this runtime loads {sorted(BACKENDS)}")
    try:
        cls = resolve(spec)
    except Unresolvable as exc:
        raise LoadError(f"the {kind!r} backend ({spec}) cannot be loaded here: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise LoadError(f"{spec} is not a runtime.base.Runner subclass")
    return cls


def load(path: str | os.PathLike[str], device: str | torch.device | None = None, verify: bool = True) -> Runner:
    """Open an artifact of any kind contract/backends.py describes, by reading its manifest.

    `path` is the artifact or its `.json` manifest. `device` defaults to the backend's choice (the artifact's own,
    manifest.device; ONNX takes CUDA when onnxruntime-gpu and a GPU are there). Which kinds may run on another
    device than they were built on: their descriptions' `devices` (this module's docstring).
    `verify=False` skips the sha256 check (only for callers that have just checked it themselves).
    """
    artifact = Path(path)
    if artifact.suffix == ".json":
        artifact = artifact.with_suffix("")
    manifest: Manifest = read_manifest(artifact, verify=verify)
    cls = runner_class(manifest.kind)
    check_device(artifact, manifest, device if device is not None else cls.default_device(manifest))
    return cls(artifact, manifest, device)
