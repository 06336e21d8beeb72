"""Shared fixtures: a tiny synthetic checkpoint written once per session, and seeded inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from export.manifest import manifest_path
from models.synthetic import write_checkpoint


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny")


def seeded(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def copy_artifact(artifact: Path, folder: Path) -> Path:
    """Copy an artifact and its manifest into `folder` (tests damage the copy, never the shared original)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / artifact.name
    shutil.copyfile(artifact, target)
    shutil.copyfile(manifest_path(artifact), manifest_path(target))
    return target
