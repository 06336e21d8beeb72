"""What every builder shares around the artifact file: request checks, naming, overwrite refusal, staging, manifest.

Naming: `<out>/<kind>-<precision>-<profile>[-L<k>]<suffix>`, e.g. `artifacts/onnx-fp32-image-448.onnx` with its
manifest `artifacts/onnx-fp32-image-448.onnx.json`. `-L<k>` appears when the artifact stops early: k is the number
of encoder layers it runs (`--output-layer -2` on the 24-layer model gives `-L23`, the same file as
`--output-layer 23`). Several profiles (TensorRT) are joined with `+`.

Files are written into a staging folder inside the output folder and moved into place only once the build and its
verification succeeded, so a failed build never leaves a half-written artifact under the final name. Installed files
get the mode a new file gets under the user's umask (some writers, e.g. onnx's external-data writer, create theirs
0600).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contract.backends import BACKENDS
from contract.dtypes import DTYPE_NAMES
from contract.io import INPUT_NAMES, OUTPUT_NAMES, PACKED_INPUT_NAMES
from contract.manifest import PRECISIONS, SUFFIX, Manifest, manifest_path, tool_versions
from contract.packing import CU_DTYPE
from contract.profiles import Profile
from models import CheckpointError, InputError, OneVisionEncoderConfig, layers_for_output, load_config, weights_sha256
from models.packing import MODES as PACKED_MODES

from .base import BuildRequest, ExportError
from .inputs import dtype_of, symbolic_shapes

DEVICES = ("cpu", "cuda")


def layers_run(output_layer: int, num_layers: int) -> int:
    """How many encoder layers an artifact with `output_layer` runs (the model's rule), as an ExportError."""
    try:
        return layers_for_output(output_layer, num_layers)
    except InputError as exc:
        raise ExportError(str(exc)) from None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "custom"


def artifact_name(
    kind: str, precision: str, profiles: list[Profile], output_layer: int = -1, num_layers: int | None = None
) -> str:
    if kind not in SUFFIX:
        raise ExportError(f"unknown artifact kind {kind!r}: use one of {', '.join(SUFFIX)}")
    name = f"{kind}-{precision}-" + "+".join(_safe(p.name) for p in profiles)
    if output_layer != -1:
        k = layers_run(output_layer, num_layers) if num_layers is not None else output_layer
        if num_layers is None or k != num_layers:
            name += f"-L{k}"
    return name + SUFFIX[kind]


def check_request(request: BuildRequest) -> OneVisionEncoderConfig:
    """Everything about a request that can be refused before any work: one ExportError line each."""
    if request.precision not in PRECISIONS:
        raise ExportError(f"precision {request.precision!r} is not supported: use one of {', '.join(PRECISIONS)}")
    if request.device not in DEVICES:
        raise ExportError(f"device {request.device!r} is not supported: use one of {', '.join(DEVICES)}")
    if not request.profiles:
        raise ExportError("no shape profile given")
    try:
        config = load_config(request.model_dir)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    layers_run(request.output_layer, config.num_hidden_layers)
    for profile in request.profiles:  # the manifest's profile is what the runtime checks inputs against
        if profile.patch != config.patch_size:
            raise ExportError(
                f"profile {profile.name!r} is for {profile.patch}-px patches, but {request.model_dir} has "
                f"patch_size {config.patch_size}: use a profile with patch={config.patch_size}"
            )
    return config


def packed_attention(kind: str, request: BuildRequest) -> str | None:
    """How a packed build of `kind` attends within items: options["packed_attention"], else its description's choice
    (contract/backends.py); None for a batched profile. One ExportError line for a kind that cannot pack."""
    if not request.profile.packed:
        return None
    chosen = request.options.get("packed_attention") or BACKENDS[kind].packed
    if chosen is None:
        raise ExportError(f"{kind}: {BACKENDS[kind].label}s cannot be exported packed; use a batched profile")
    if chosen not in PACKED_MODES:
        raise ExportError(f"{kind}: packed_attention must be one of {PACKED_MODES}, got {chosen!r}")
    return str(chosen)


def artifact_path(request: BuildRequest, kind: str, config: OneVisionEncoderConfig | None = None) -> Path:
    """Where `kind` writes the artifact of `request` (torch and ONNX kinds name it after the first profile)."""
    config = config or check_request(request)
    profiles = request.profiles if BACKENDS[kind].multi_profile else request.profiles[:1]
    name = artifact_name(kind, request.precision, profiles, request.output_layer, config.num_hidden_layers)
    return Path(request.out_dir) / name


def refuse_existing(path: Path, overwrite: bool) -> None:
    if overwrite:
        return
    for existing in (path, manifest_path(path)):
        if existing.exists():
            raise ExportError(f"{existing} already exists; pass --overwrite (overwrite=True) to replace it")


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A fresh folder inside `out_dir` (same filesystem, so moves are renames), removed afterwards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = out_dir / f".staging-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _previous_side_files(manifest: Path) -> list[str]:
    """Side files an existing manifest names: its `files` list after the artifact (format 1: ONNX external data)."""
    try:
        data = json.loads(manifest.read_text())
        names = [f.get("path") for f in data.get("files", [])[1:]] or [data.get("extra", {}).get("external_data")]
    except (json.JSONDecodeError, AttributeError, TypeError):
        return []
    return [n for n in names if isinstance(n, str) and n and Path(n).name == n]


def _remove_previous(artifact: Path) -> None:
    """An artifact being replaced: its manifest and the side files it names (e.g. ONNX external data) go too."""
    old = manifest_path(artifact)
    if old.is_file():
        for side in _previous_side_files(old):
            (artifact.parent / side).unlink(missing_ok=True)
        old.unlink()


def umask_mode(folder: Path) -> int:
    """The permission bits a new file gets in `folder` under this process's umask (found by creating one)."""
    probe = folder / f".mode-{uuid.uuid4().hex[:12]}"
    probe.touch()
    try:
        return stat.S_IMODE(probe.stat().st_mode)
    finally:
        probe.unlink()


def install(files: list[Path], out_dir: Path, overwrite: bool) -> list[Path]:
    """Move staged files into `out_dir` under their names (the first is the artifact; its old manifest goes too).

    Each gets the mode of a new file under the user's umask, whatever mode its writer created it with."""
    targets = [out_dir / f.name for f in files]
    refuse_existing(targets[0], overwrite)
    for target in targets:
        if target.exists() and not overwrite:
            raise ExportError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    _remove_previous(targets[0])
    mode = umask_mode(files[0].parent)
    for staged, target in zip(files, targets, strict=True):
        os.chmod(staged, mode)
        staged.replace(target)
    return targets


def io_specs(
    profile: Profile, precision: str, hidden: int, flat: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The manifest's inputs/outputs: name, dtype, shape with symbolic dims (a packed profile: the packed signature,
    in rows or `flat` layout)."""
    shapes = symbolic_shapes(profile, hidden, flat)
    float_name = DTYPE_NAMES[dtype_of(precision)]
    names = PACKED_INPUT_NAMES if profile.packed else INPUT_NAMES
    dtypes = {names[0]: float_name, names[1]: "int64", OUTPUT_NAMES[0]: float_name}
    dtypes |= {"cu_seqlens": DTYPE_NAMES[CU_DTYPE]}
    inputs = [{"name": n, "dtype": dtypes[n], "shape": shapes[n]} for n in names]
    outputs = [{"name": n, "dtype": dtypes[n], "shape": shapes[n]} for n in OUTPUT_NAMES]
    return inputs, outputs


def source_info(model_dir: Path) -> dict[str, Any]:
    return {
        "checkpoint": str(model_dir),
        "weights_sha256": weights_sha256(model_dir),
        "config": json.loads((Path(model_dir) / "config.json").read_text()),
    }


def make_manifest(
    request: BuildRequest,
    kind: str,
    config: OneVisionEncoderConfig,
    build: dict[str, Any],
    extra: dict[str, Any],
    device: str | None = None,
    tools: tuple[str, ...] = (),
) -> Manifest:
    """A manifest with everything but path/sha256/created (write_manifest fills those from the file)."""
    inputs, outputs = io_specs(request.profile, request.precision, config.hidden_size, BACKENDS[kind].packed_flat)
    return Manifest(
        kind=kind,
        path="",
        sha256="",
        precision=request.precision,
        device=device or request.device,
        profile=request.profile.to_dict(),
        output_layer=request.output_layer,
        source=source_info(request.model_dir),
        inputs=inputs,
        outputs=outputs,
        tools=tool_versions(*tools),
        build=build,
        extra={
            "layers_run": layers_run(request.output_layer, config.num_hidden_layers),
            **({"packed_attention": packed_attention(kind, request)} if request.profile.packed else {}),
            **extra,
        },
    )
