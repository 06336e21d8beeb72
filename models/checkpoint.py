"""Checkpoint directories as files: config.json, the safetensors headers checked against expected shapes (one clear
error each), and the weight files' sha256. Nothing here builds a model: `models.modeling` owns the parameter layout
(`expected_shapes`) and validates a directory with these helpers before loading it."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contract.errors import CheckpointError
from contract.manifest import file_sha256

from .attention import CONFIG_KEYS
from .configuration import MODEL_TYPE, OneVisionEncoderConfig

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_config(directory: str | os.PathLike[str]) -> OneVisionEncoderConfig:
    """Read and validate `config.json` of a checkpoint directory."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no config.json (expected a Hugging Face checkpoint directory)")
    data = _read_json(path)
    model_type = data.get("model_type")
    if model_type != MODEL_TYPE:
        raise CheckpointError(f"{path}: model_type must be {MODEL_TYPE!r}, got {model_type!r}")
    # Reading a directory never resolves (or warns about) its attention choice: that is the loading model's business.
    config = OneVisionEncoderConfig.from_dict({k: v for k, v in data.items() if k not in CONFIG_KEYS})
    config.validate()
    return config


def weight_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The safetensors files of a checkpoint (single file or the shards named by the index), in order."""
    root = Path(directory)
    index = root / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index}: missing or empty 'weight_map'")
        files = [root / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard(s) that do not exist: {', '.join(missing)}")
        return files
    single = root / SINGLE_FILE
    if single.is_file():
        return [single]
    pickles = [name for name in PICKLE_FILES if (root / name).exists()]
    if pickles:
        raise CheckpointError(
            f"{directory}: only pickle weights found ({', '.join(pickles)}); this bundle loads safetensors only "
            f"(expected {SINGLE_FILE} or {INDEX_FILE})"
        )
    raise CheckpointError(f"{directory}: no weights (expected {SINGLE_FILE} or {INDEX_FILE})")


def _safetensors_header(path: Path) -> dict[str, Any]:
    """Parse and bounds-check a safetensors header without loading tensors: a truncated file is caught here."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise CheckpointError(
                f"{path}: truncated safetensors file (header says {header_len} bytes, file has {size})"
            )
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: corrupt safetensors header") from None
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = int(info["data_offsets"][1])
        if end > data_len:
            raise CheckpointError(
                f"{path}: truncated safetensors file (tensor {name!r} ends at byte {end}, data has {data_len})"
            )
    return {k: v for k, v in header.items() if k != "__metadata__"}


def checkpoint_keys(directory: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Tensor name -> safetensors header entry (dtype, shape) over every weight file."""
    keys: dict[str, dict[str, Any]] = {}
    for path in weight_files(directory):
        keys.update(_safetensors_header(path))
    return keys


def _listing(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_weights(directory: str | os.PathLike[str], expected: dict[str, tuple[int, ...]]) -> None:
    """The weight files hold exactly the `expected` tensor names with their shapes (headers only); one
    `CheckpointError` otherwise."""
    found = checkpoint_keys(directory)
    missing, unexpected = set(expected) - set(found), set(found) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_listing(unexpected)}")
        raise CheckpointError(f"{directory}: weights do not match the config: " + "; ".join(parts))
    wrong = {n: (tuple(found[n]["shape"]), s) for n, s in expected.items() if tuple(found[n]["shape"]) != s}
    if wrong:
        name, (got, want) = sorted(wrong.items())[0]
        raise CheckpointError(
            f"{directory}: {len(wrong)} tensor(s) have the wrong shape, e.g. {name}: expected {want}, got {got}"
        )


def weights_sha256(directory: str | os.PathLike[str]) -> str:
    """sha256 of the weights: of the single file, or of 'name:sha256' lines over the shards."""
    files = weight_files(directory)
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{f.name}:{file_sha256(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()
