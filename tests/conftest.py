"""Shared fixtures: a tiny synthetic checkpoint and its fp32 artifacts (built once per session), seeded inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from contract.backends import BACKENDS
from contract.manifest import manifest_path, read_manifest
from contract.profiles import PACKED_PROFILES, PROFILES
from export import BuildRequest, build, get_builder
from export.verify import shared_eager_reference
from models.synthetic import write_checkpoint
from parity.__main__ import main as parity_main


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny")


# Every kind a CPU machine builds and runs (the TensorRT kinds are built for CUDA), from the backend descriptions.
CPU_KINDS = tuple(kind for kind, b in BACKENDS.items() if b.build_device is None)
# ... and those of them that are exported packed (contract/backends.py `packed`).
PACKED_CPU_KINDS = tuple(kind for kind in CPU_KINDS if BACKENDS[kind].packed)

V = TypeVar("V")


class Available(dict[str, V]):
    """kind -> value for the kinds this machine has; reading a kind it lacks skips the test with the reason (the
    builder's own `unavailable()` line: e.g. OpenVINO on the GPU machine, which has no openvino package)."""

    def __init__(self, present: dict[str, V], missing: dict[str, str]) -> None:
        super().__init__(present)
        self.missing = missing

    def __missing__(self, kind: str) -> V:
        if kind in self.missing:
            pytest.skip(f"{kind}: this machine cannot build it: {self.missing[kind]}")
        raise KeyError(kind)

    def map(self, fn: Callable[[V], W]) -> Available[W]:
        return Available({k: fn(v) for k, v in self.items()}, self.missing)


W = TypeVar("W")


def build_available(kinds: tuple[str, ...], request: BuildRequest, reuse_onnx: bool = False) -> Available[Path]:
    """Build each kind this machine can build; the others are recorded with the builder's reason. `reuse_onnx`: a
    kind that converts the bundle's ONNX graph of this precision (OpenVINO for fp32) converts the ONNX artifact built
    before it, as `export all` does (one ONNX export instead of two)."""
    built: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for kind in kinds:
        own = request
        if reuse_onnx and "onnx" in built and BACKENDS[kind].onnx_precision(request.precision) == request.precision:
            own = dataclasses.replace(request, options={**request.options, "onnx": str(built["onnx"])})
        reason = get_builder(kind).unavailable(own)
        if reason:
            missing[kind] = reason
        else:
            built[kind] = build(kind, own).path
    return Available(built, missing)


@pytest.fixture(scope="session")
def tiny_artifacts_fp32(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Available[Path]:
    """fp32 artifacts of every CPU kind this machine can build (pt2, AOTInductor, ONNX, TorchScript, OpenVINO) of the
    tiny checkpoint for `test-small`, built once per session (the AOTInductor compile is the slow part). Shared: tests
    that damage or rebuild one work on a copy (copy_artifact). A kind this machine cannot build skips the tests that
    read it, with the builder's reason."""
    out = tmp_path_factory.mktemp("tiny-artifacts-fp32")
    request = BuildRequest(tiny_dir, "fp32", [PROFILES["test-small"]], out, options={"quiet": True})
    return build_available(CPU_KINDS, request)


@pytest.fixture(scope="session")
def tiny_packed_fp32(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Available[Path]:
    """Packed fp32 artifacts (profile `packed-test-small`: contract/packing.py) of every CPU kind this machine can
    build (pt2, AOTInductor, ONNX, TorchScript, OpenVINO converting that ONNX) of the tiny checkpoint, built once per
    session and shared by every packed test (the AOTInductor compile is the slow part). Tests that damage or rebuild
    one work on a copy (copy_artifact)."""
    out = tmp_path_factory.mktemp("tiny-packed-fp32")
    request = BuildRequest(tiny_dir, "fp32", [PACKED_PROFILES["packed-test-small"]], out, options={"quiet": True})
    with shared_eager_reference():  # every build-time check against the same eager items, computed once
        return build_available(PACKED_CPU_KINDS, request, reuse_onnx=True)


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


def run_cli(*args: str | Path) -> tuple[int, dict[str, Any], Path]:
    """python -m parity ... in-process; returns (exit status, report.json, results folder)."""
    argv = [str(a) for a in args]
    out = Path(argv[argv.index("--results-dir") + 1]) / argv[argv.index("--name") + 1]
    code = parity_main([*argv, "--no-progress"])
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    return code, report, out
