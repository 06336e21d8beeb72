"""Shared fixtures: a tiny synthetic checkpoint and its fp32 artifacts (built once per session), seeded inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from contract.backends import BACKENDS
from contract.manifest import manifest_path, read_manifest
from contract.profiles import PROFILES
from export import BuildRequest, build
from models.synthetic import write_checkpoint


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny")


# Every kind a CPU machine builds and runs (the TensorRT kinds are built for CUDA), from the backend descriptions.
CPU_KINDS = tuple(kind for kind, b in BACKENDS.items() if b.build_device is None)


@pytest.fixture(scope="session")
def tiny_artifacts_fp32(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 pt2, AOTInductor, ONNX and TorchScript artifacts of the tiny checkpoint for `test-small`, built once per
    session (the AOTInductor compile is the slow part). Shared: tests that damage or rebuild one work on a copy
    (copy_artifact)."""
    out = tmp_path_factory.mktemp("tiny-artifacts-fp32")
    request = BuildRequest(tiny_dir, "fp32", [PROFILES["test-small"]], out, options={"quiet": True})
    return {kind: build(kind, request).path for kind in CPU_KINDS}


def seeded(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def copy_artifact(artifact: Path, folder: Path) -> Path:
    """Copy an artifact, its side files and its manifest into `folder` (tests damage the copy, never the original)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / artifact.name
    shutil.copyfile(artifact, target)
    for name in read_manifest(artifact, verify=False).side_files:
        shutil.copyfile(artifact.with_name(name), target.with_name(name))
    shutil.copyfile(manifest_path(artifact), manifest_path(target))
    return target
