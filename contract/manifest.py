"""The JSON sidecar every artifact carries (`<artifact>.json`), and sha256 helpers.

Keys (all artifacts): format_version, kind, path (artifact file name, relative to the manifest), sha256 (of the
artifact file), files [{path, sha256, size}] (every file the artifact consists of: the artifact file first, then
its side files such as the ONNX external data `<artifact>.data`; plain names in the manifest's folder), precision
("fp32"|"bf16"|"fp16"), device ("cpu"|"cuda": where it was built and verified; for aoti the only device type the
package runs on, for trt and trt-rtx always CUDA; pt2, onnx and torchscript move, see contract/backends.py), profile
(ShapeProfile.to_dict()), output_layer, source {checkpoint, weights_sha256, config}, inputs/outputs [{name, dtype,
shape}] with symbolic dims as strings ("batch", "frames", "height", "width", "tokens"), tools {python, torch,
transformers, onnx, onnxruntime, tensorrt, ...}, created (ISO time), build {seconds, peak_rss_mib, ...}, extra
{kind-specific}.

Integrity: `read_manifest(verify=True)` checks every entry of `files` (present, size, sha256) and refuses the first
that is missing or differs, in one line naming it. Format 1 manifests (before `files`) still load: their file list
is rebuilt from `path`/`sha256` and, for ONNX, `extra.external_data`/`external_data_sha256` (recorded since format
1), without sizes; nothing else changed between the formats.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .backends import BACKENDS
from .backends import KINDS as KINDS  # re-exported: the manifest kinds
from .dtypes import DTYPES
from .errors import ManifestError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no `files` list (see the module docstring)
PRECISIONS = tuple(DTYPES)
SUFFIX = {kind: b.suffix for kind, b in BACKENDS.items()}


@dataclass
class Manifest:
    kind: str
    path: str
    sha256: str
    precision: str
    device: str
    profile: dict[str, Any]
    output_layer: int
    source: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    tools: dict[str, str] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)  # [{path, sha256, size}], the artifact file first
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def side_files(self) -> list[str]:
        """Names of the files beside the artifact file that belong to it (e.g. ONNX external data)."""
        return [str(f["path"]) for f in self.files[1:]]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """sha256 hex digest of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(artifact: str | os.PathLike[str]) -> Path:
    return Path(str(artifact) + ".json")


def tool_versions(*extra: str) -> dict[str, str]:
    names = ("torch", "transformers", "safetensors", "onnx", "onnxscript", "onnxruntime", *extra)
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _plain_name(name: str, where: Path) -> str:
    if not name or Path(name).name != name or name in (".", ".."):
        raise ManifestError(f"{where}: file {name!r} must be a plain file name in the manifest's folder")
    return name


def file_entry(path: Path) -> dict[str, Any]:
    return {"path": path.name, "sha256": file_sha256(path), "size": path.stat().st_size}


def write_manifest(artifact: str | os.PathLike[str], manifest: Manifest, side_files: list[str] | None = None) -> Path:
    """Fill in path/sha256/files/created from the files and write `<artifact>.json` next to the artifact.

    `side_files`: names of the other files the artifact consists of, beside it (None: the ones `manifest.files`
    already lists, e.g. when a builder rewrites a manifest it read back); each is hashed now.
    """
    artifact = Path(artifact)
    names = manifest.side_files if side_files is None else [Path(f).name for f in side_files]
    entries = [file_entry(artifact)]
    for name in names:
        side = artifact.with_name(_plain_name(name, artifact))
        if not side.is_file():
            raise ManifestError(f"{artifact}: side file {name} is missing, cannot write the manifest")
        entries.append(file_entry(side))
    manifest.path = artifact.name
    manifest.sha256 = entries[0]["sha256"]
    manifest.files = entries
    manifest.format_version = FORMAT_VERSION
    manifest.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    out = manifest_path(artifact)
    out.write_text(manifest.to_json())
    return out


def _upgrade_v1(manifest: Manifest) -> None:
    """Format 1 had no `files`: the artifact's sha256, and the ONNX external data's in extra (sizes unknown)."""
    manifest.files = [{"path": manifest.path, "sha256": manifest.sha256, "size": None}]
    external = manifest.extra.get("external_data")
    if external:
        manifest.files.append({"path": external, "sha256": manifest.extra.get("external_data_sha256"), "size": None})


def verify_files(path: Path, manifest: Manifest) -> None:
    """Every file of the artifact present, of its recorded size and sha256; the first that is not is refused."""
    mname = manifest_path(path).name
    for i, entry in enumerate(manifest.files):
        name = _plain_name(str(entry.get("path", "")), manifest_path(path))
        file = path if i == 0 else path.with_name(name)  # the artifact under the name it was given
        role = "artifact" if i == 0 else "side file"
        if not file.is_file():
            raise ManifestError(f"{file}: {role} listed in {mname} is missing")
        size = entry.get("size")
        if size is not None and file.stat().st_size != size:
            raise ManifestError(
                f"{file}: {role} of {file.stat().st_size} bytes does not match its manifest ({size} bytes): the file "
                "is damaged, truncated or was replaced"
            )
        expected = str(entry.get("sha256") or "")
        actual = file_sha256(file)
        if actual != expected:
            raise ManifestError(
                f"{file}: sha256 {actual[:16]}... does not match its manifest ({expected[:16]}...): "
                "the file is damaged, truncated or was replaced"
            )


def read_manifest(artifact: str | os.PathLike[str], verify: bool = True) -> Manifest:
    """Read the manifest of an artifact (the artifact path or the `.json` itself); check the sha256 if `verify`."""
    path = Path(artifact)
    if path.suffix == ".json":
        path = path.with_suffix("")
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise ManifestError(f"{path}: no manifest {mpath.name} beside it (artifacts are loaded through their manifest)")
    try:
        data = json.loads(mpath.read_text())
        manifest = Manifest(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ManifestError(f"{mpath}: unreadable manifest ({exc})") from None
    if manifest.format_version not in READABLE_VERSIONS:
        raise ManifestError(
            f"{mpath}: format_version {manifest.format_version}, expected one of "
            f"{', '.join(map(str, READABLE_VERSIONS))} (a newer bundle wrote it: update this one)"
        )
    if manifest.format_version == 1:
        _upgrade_v1(manifest)
    elif not manifest.files or manifest.files[0].get("path") != manifest.path:
        raise ManifestError(f"{mpath}: unreadable manifest (its files list must start with {manifest.path})")
    if not path.is_file():
        raise ManifestError(f"{mpath}: artifact {path.name} is missing")
    if verify:
        verify_files(path, manifest)
    return manifest
