"""What serving reads from an artifact: its manifest and profile, and the default artifact to serve.

This is the one module of `serving/` that touches the manifest format (today in `contract.manifest` and
`contract.profiles`); everything else asks this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.backends import BACKENDS
from contract.manifest import Manifest, ManifestError, read_manifest
from contract.profiles import PackedProfile, Profile, ProfileError, ShapeProfile, profile_from_dict, resolve_profile


def preference(device: str, precision: str) -> tuple[str, ...]:
    """Kinds best first for `device` at `precision`: each kind's serving rank (contract/backends.py, where the
    measurements behind it are named); a kind without a rank there is not chosen by default."""
    ranked = [(b.rank(device, precision), kind) for kind, b in BACKENDS.items()]
    return tuple(kind for rank, kind in sorted((r, k) for r, k in ranked if r is not None))


def runs_on(info: ArtifactInfo, device: str) -> bool:
    """The artifact runs on `device` ("cpu" | "cuda[:N]"): the device it was built for, or one its kind moves to."""
    device_type = device.split(":")[0]
    return info.manifest.device == device_type or device_type in (BACKENDS[info.kind].devices or ())


def wanted_profile(spec: str | os.PathLike[str] | Profile) -> Profile | str:
    """The profile a user names, resolved as export resolves it (a bundle profile's name, a JSON file or a Profile:
    contract.profiles); any other string is the name of a custom profile as a manifest records it."""
    try:
        return resolve_profile(spec)
    except ProfileError:
        return str(spec)


def serves_profile(info: ArtifactInfo, profile: Profile | str) -> bool:
    """The artifact was built for `profile`: its manifest's profile, or one of a multi-profile engine's, is equal to
    it (name and ranges: two JSON files of one name but other shapes are told apart), or is named `profile`."""
    recorded = [info.manifest.profile, *info.manifest.extra.get("tensorrt", {}).get("profiles", [])]
    if isinstance(profile, str):
        return any(p.get("name") == profile for p in recorded)
    return any(profile_from_dict(p) == profile for p in recorded)


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
    profile: str | os.PathLike[str] | Profile = "image-448",
    device: str = "cpu",
) -> ArtifactInfo:
    """The best artifact under `root` built from `model` (default checkpoint if None) at `precision` for `profile`
    (a name, a JSON file or a Profile, matched by value as export recorded it) that runs on `device`.

    "Best" is the first kind of `preference(device, precision)` present (newest first among equals). Nothing is
    built here: exporting the full-size model takes minutes and several GB of RAM, so when no artifact fits, the
    error says which `make export-...` command builds one.
    """
    checkpoint = Path(model) if model is not None else default_checkpoint()
    wanted = wanted_profile(profile)
    order = preference(device, precision)
    candidates: list[tuple[int, str, ArtifactInfo]] = []
    for info in _artifacts_under(Path(root)):
        m = info.manifest
        if (
            m.kind in order
            and m.precision == precision
            and serves_profile(info, wanted)
            and Path(str(m.source.get("checkpoint", ""))).resolve() == checkpoint.resolve()
            and runs_on(info, device)
        ):
            candidates.append((order.index(m.kind), m.created, info))
    if not candidates:
        raise _none_found(Path(root), checkpoint, model, precision, profile, order)
    candidates.sort(key=lambda c: (c[0], _neg(c[1])))
    return candidates[0][2]


def _none_found(
    root: Path,
    checkpoint: Path,
    model: str | os.PathLike[str] | None,
    precision: str,
    profile: str | os.PathLike[str] | Profile,
    order: tuple[str, ...],
) -> ServingError:
    """What to build when no artifact fits."""
    model_arg = f" MODEL={model}" if model is not None else ""
    if isinstance(profile, ShapeProfile | PackedProfile):
        name, command = repr(profile.name), f"`python -m export {order[0]}` and the same --min/--opt/--max-shapes"
    else:
        wanted = wanted_profile(profile)
        name = repr(wanted if isinstance(wanted, str) else wanted.name)
        name += f" ({profile})" if name != repr(str(profile)) else ""
        command = f"`make export-{order[0]}{model_arg} PRECISION={precision} PROFILE={profile}`"
    return ServingError(
        f"no {precision} artifact for profile {name} of checkpoint {checkpoint} under {root}/ (looked for kinds "
        f"{', '.join(order)}); build one with {command} (or another of {', '.join(order[1:])}), or pass "
        "ARTIFACT=path/to/artifact"
    )


def _artifacts_under(root: Path) -> list[ArtifactInfo]:
    """Every artifact whose manifest under `root` reads (unreadable ones are not candidates)."""
    found = []
    for mpath in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            found.append(read_artifact(mpath, verify=False))
        except ManifestError:
            continue
    return found


def _neg(created: str) -> tuple[int, ...]:
    """Sort key putting the newest ISO timestamp first."""
    return tuple(-ord(ch) for ch in created)
