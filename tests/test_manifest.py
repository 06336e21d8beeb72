"""Manifest integrity covers every file of an artifact (the ONNX external data too), format-1 manifests still load,
and artifacts are written with the user's umask whatever their writer does."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.manifest import FORMAT_VERSION, ManifestError, file_sha256, manifest_path, read_manifest, write_manifest
from contract.profiles import PROFILES
from export import BuildRequest, BuildResult, build
from tests.conftest import copy_artifact

PROFILE = PROFILES["test-small"]


UMASK = 0o002  # group-writable files: not this machine's default 022, so a mode hard-coded anywhere shows


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _build(kind: str, tiny_dir: Path, out: Path, **options: object) -> BuildResult:
    return build(kind, BuildRequest(tiny_dir, "fp32", [PROFILE], out, options={"quiet": True, **options}))


@pytest.fixture(scope="module")
def onnx_external(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ONNX artifact with its weights in the external data file `<artifact>.data`, built under UMASK."""
    with umask(UMASK):
        return _build("onnx", tiny_dir, tmp_path_factory.mktemp("onnx-ext"), external_data=True).path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _copy_folder(artifact: Path, folder: Path) -> Path:
    """Every file of the artifact's folder copied (not through the manifest: what is checked must not pick them)."""
    shutil.copytree(artifact.parent, folder)
    return folder / artifact.name


def test_manifest_lists_every_file_with_sha256_and_size(onnx_external: Path) -> None:
    manifest = read_manifest(onnx_external)
    data = onnx_external.with_name(onnx_external.name + ".data")
    assert manifest.format_version == FORMAT_VERSION == 2
    assert manifest.side_files == [data.name]
    assert manifest.files == [
        {"path": p.name, "sha256": file_sha256(p), "size": p.stat().st_size} for p in (onnx_external, data)
    ]
    assert manifest.files[0]["sha256"] == manifest.sha256
    assert data.stat().st_size > onnx_external.stat().st_size  # the weights really are in the side file


def test_damaged_side_file_is_refused_naming_it(onnx_external: Path, tmp_path: Path) -> None:
    flipped = _copy_folder(onnx_external, tmp_path / "flipped")
    data = flipped.with_name(flipped.name + ".data")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # same size, one bit different
    data.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match=r"\.onnx\.data: sha256 .* does not match its manifest") as exc:
        read_manifest(flipped)
    assert "\n" not in str(exc.value)
    read_manifest(flipped, verify=False)  # verify=False skips the hashes, as before

    truncated = _copy_folder(onnx_external, tmp_path / "truncated")
    data = truncated.with_name(truncated.name + ".data")
    data.write_bytes(data.read_bytes()[:-4])
    size_message = r"\.onnx\.data: side file of \d+ bytes does not match its manifest \(\d+ bytes\)"
    with pytest.raises(ManifestError, match=size_message):
        read_manifest(truncated)

    missing = _copy_folder(onnx_external, tmp_path / "missing")
    missing.with_name(missing.name + ".data").unlink()
    with pytest.raises(ManifestError, match=r"\.onnx\.data: side file listed in .*\.onnx\.json is missing"):
        read_manifest(missing)


def test_format_1_manifest_still_loads_and_checks_the_external_data(onnx_external: Path, tmp_path: Path) -> None:
    """Format 1 (no `files`) is read as before, its external data checked by extra.external_data_sha256."""
    copy = copy_artifact(onnx_external, tmp_path / "v1")
    mpath = manifest_path(copy)
    data = json.loads(mpath.read_text())
    del data["files"]
    data["format_version"] = 1
    mpath.write_text(json.dumps(data))
    manifest = read_manifest(copy)
    assert manifest.side_files == [copy.name + ".data"] and manifest.files[1]["size"] is None
    side = copy.with_name(copy.name + ".data")
    side.write_bytes(side.read_bytes()[:-4])
    with pytest.raises(ManifestError, match=r"\.onnx\.data: sha256 .* does not match"):
        read_manifest(copy)

    data["format_version"] = 3
    mpath.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"format_version 3, expected one of 1, 2 \(a newer bundle"):
        read_manifest(copy, verify=False)


def test_a_manifest_cannot_point_outside_its_folder(onnx_external: Path, tmp_path: Path) -> None:
    copy = copy_artifact(onnx_external, tmp_path / "escape")
    mpath = manifest_path(copy)
    data = json.loads(mpath.read_text())
    data["files"][1]["path"] = "../elsewhere.data"
    mpath.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"'\.\./elsewhere\.data' must be a plain file name"):
        read_manifest(copy)


def test_rewriting_a_manifest_keeps_its_side_files(onnx_external: Path, tmp_path: Path) -> None:
    """A builder that rewrites a manifest it read back (TensorRT with several profiles) keeps the file list."""
    copy = copy_artifact(onnx_external, tmp_path / "rewrite")
    manifest = read_manifest(copy)
    write_manifest(copy, manifest)
    assert read_manifest(copy).files == manifest.files and len(manifest.files) == 2


def test_overwrite_replaces_every_file(onnx_external: Path, tiny_dir: Path, tmp_path: Path) -> None:
    """Rebuilding without external data removes the old side file with the old manifest."""
    copy = copy_artifact(onnx_external, tmp_path / "over")
    rebuilt = build(
        "onnx",
        BuildRequest(tiny_dir, "fp32", [PROFILE], copy.parent, overwrite=True, options={"quiet": True}),
    )
    assert rebuilt.path == copy and read_manifest(copy).side_files == []
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name, copy.name + ".json"]


@pytest.mark.parametrize("kind", ["onnx", "pt2"])
def test_files_are_written_with_the_users_umask(onnx_external: Path, kind: str, tiny_dir: Path, tmp_path: Path) -> None:
    """Every file the build writes gets 0o666 & ~umask (onnx writes its external data 0600 by itself)."""
    if kind == "onnx":
        folder = onnx_external.parent
    else:
        with umask(UMASK):
            folder = _build(kind, tiny_dir, tmp_path).path.parent
    files = sorted(folder.iterdir())
    assert len(files) == (3 if kind == "onnx" else 2)  # artifact (+ .data) + manifest, no staging left
    assert {f.name: oct(_mode(f)) for f in files} == {f.name: oct(0o666 & ~UMASK) for f in files}
