"""What serving reads from an artifact: its manifest and profile, and the default artifact to serve.

This is the one module of `serving/` that touches the manifest format (today in `contract.manifest` and
`contract.profiles`); everything else asks this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.manifest import Manifest, ManifestError, read_manifest
from contract.profiles import PackedProfile, Profile, profile_from_dict


def preference(device: str, precision: str) -> tuple[str, ...]:
    """Kinds best first: what the README's Benchmarks measured fastest on this CPU (fp32: onnxruntime 1.96x eager,
    AOTInductor 1.83x, pt2 1.05x; bf16: AOTInductor, pt2 - onnxruntime has no bf16 convolution on the CPU); on a
    GPU, TensorRT first (not measured here: no GPU was lent)."""
    if device.startswith("cuda"):
        return ("trt", "aoti", "onnx", "pt2")
    return ("onnx", "aoti", "pt2") if precision == "fp32" else ("aoti", "pt2", "onnx")


class ServingError(RuntimeError):
    """Serving cannot start or generate what was asked (one line: what is wrong and what to do)."""


@dataclass(frozen=True)
class ArtifactInfo:
    """An artifact as serving sees it: its files, manifest and shape profile (read without loading a backend)."""

    path: Path
    manifest: Manifest

    @property
    def profile(self) -> Profile:
        """Its shape profile: batched (ShapeProfile) or packed (PackedProfile, contract/packing.py)."""
        return profile_from_dict(self.manifest.profile)

    @property
    def packed(self) -> bool:
        """A packed artifact: one item (batch 1) a request, requests of different shapes packed into one call."""
        return isinstance(self.profile, PackedProfile)

    @property
    def packed_flat(self) -> bool:
        """A packed artifact whose inputs are flat 1-D (ONNX graphs and what is built from them), else rows."""
        return self.packed and len(self.manifest.inputs[0].get("shape") or []) == 1

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def manifest_file(self) -> Path:
        return Path(str(self.path) + ".json")

    @property
    def files(self) -> list[Path]:
        """Every file the artifact consists of: itself, its manifest and the side files its manifest lists (ONNX
        external data, OpenVINO's .bin weights)."""
        return [self.path, self.manifest_file, *(self.path.with_name(name) for name in self.manifest.side_files)]

    def io(self, name: str) -> dict[str, Any]:
        """The manifest's entry {name, dtype, shape} for an input or output."""
        for entry in [*self.manifest.inputs, *self.manifest.outputs]:
            if entry.get("name") == name:
                return entry
        raise ServingError(f"{self.path}: its manifest has no input or output named {name!r}")

    @property
    def hidden_size(self) -> int | None:
        shape = self.io("last_hidden_state").get("shape") or []
        return int(shape[-1]) if shape and isinstance(shape[-1], int) else None


def read_artifact(path: str | os.PathLike[str], verify: bool = True) -> ArtifactInfo:
    """The artifact at `path` (or its `.json` manifest); ManifestError if the manifest is missing or does not match."""
    artifact = Path(path)
    if artifact.suffix == ".json":
        artifact = artifact.with_suffix("")
    return ArtifactInfo(artifact, read_manifest(artifact, verify=verify))


def default_checkpoint() -> Path:
    """The checkpoint `make export` uses when MODEL is empty (the synthetic full-size one)."""
    from models.synthetic import DEFAULT_DIRS  # imported only here: the one default serving shares with export

    return DEFAULT_DIRS["full"]


def find_default(
    root: str | os.PathLike[str] = "artifacts",
    *,
    model: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
    profile: str = "image-448",
    device: str = "cpu",
) -> ArtifactInfo:
    """The best artifact under `root` built from `model` (default checkpoint if None) at `precision` and `profile`.

    "Best" is the first kind of `preference(device, precision)` present (newest first among equals). Nothing is
    built here: exporting the full-size model takes minutes and several GB of RAM, so when no artifact fits, the
    error says which `make export-...` command builds one.
    """
    checkpoint = Path(model) if model is not None else default_checkpoint()
    order = preference(device, precision)
    candidates: list[tuple[int, str, ArtifactInfo]] = []
    for mpath in sorted(Path(root).glob("*.json")) if Path(root).is_dir() else []:
        try:
            info = read_artifact(mpath, verify=False)
        except ManifestError:
            continue
        m = info.manifest
        source = Path(str(m.source.get("checkpoint", "")))
        if (
            m.kind in order
            and m.precision == precision
            and m.profile.get("name") == profile
            and source.resolve() == checkpoint.resolve()
            and (m.device == device.split(":")[0] or m.kind in ("pt2", "onnx"))
        ):
            candidates.append((order.index(m.kind), m.created, info))
    if not candidates:
        model_arg = f" MODEL={model}" if model is not None else ""
        raise ServingError(
            f"no {precision} artifact for profile {profile!r} of checkpoint {checkpoint} under {root}/ "
            f"(looked for kinds {', '.join(order)}); build one with "
            f"`make export-{order[0]}{model_arg} PRECISION={precision} PROFILE={profile}` (or another of "
            f"{', '.join(order[1:])}), or pass ARTIFACT=path/to/artifact"
        )
    candidates.sort(key=lambda c: (c[0], _neg(c[1])))
    return candidates[0][2]


def _neg(created: str) -> tuple[int, ...]:
    """Sort key putting the newest ISO timestamp first."""
    return tuple(-ord(ch) for ch in created)
