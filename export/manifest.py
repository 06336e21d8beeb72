"""The JSON sidecar every artifact carries (`<artifact>.json`), and sha256 helpers.

Keys (all artifacts): format_version, kind, path (artifact file name, relative to the manifest), sha256 (of the
artifact file), precision ("fp32"|"bf16"|"fp16"), device ("cpu"|"cuda": where it was built and verified; for aoti the
only device type the package runs on, for trt always CUDA; pt2 and onnx move, see runtime/loader.py), profile
(ShapeProfile.to_dict()), output_layer, source {checkpoint, weights_sha256, config}, inputs/outputs [{name, dtype,
shape}] with symbolic dims as strings ("batch", "frames", "height", "width", "tokens"), tools {python, torch,
transformers, onnx, onnxruntime, tensorrt, ...}, created (ISO time), build {seconds, peak_rss_mib, ...}, extra
{kind-specific}.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from models.checkpoint import file_sha256
from models.dtypes import DTYPES

FORMAT_VERSION = 1
KINDS = ("pt2", "aoti", "onnx", "trt", "trt-rtx")
PRECISIONS = tuple(DTYPES)
SUFFIX = {"pt2": ".pt2", "aoti": ".pt2", "onnx": ".onnx", "trt": ".engine", "trt-rtx": ".engine"}


class ManifestError(ValueError):
    """A manifest is missing, unreadable, or does not match its artifact."""


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
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


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


def write_manifest(artifact: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Fill in path/sha256/created from the artifact file and write `<artifact>.json` next to it."""
    artifact = Path(artifact)
    manifest.path = artifact.name
    manifest.sha256 = file_sha256(artifact)
    manifest.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    out = manifest_path(artifact)
    out.write_text(manifest.to_json())
    return out


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
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(f"{mpath}: format_version {manifest.format_version}, expected {FORMAT_VERSION}")
    if not path.is_file():
        raise ManifestError(f"{mpath}: artifact {path.name} is missing")
    if verify:
        actual = file_sha256(path)
        if actual != manifest.sha256:
            raise ManifestError(
                f"{path}: sha256 {actual[:16]}... does not match its manifest ({manifest.sha256[:16]}...): "
                "the file is damaged, truncated or was replaced"
            )
    return manifest
