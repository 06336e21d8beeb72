"""Checkpoint directories: validation with one clear error each, loading, and the weight files' sha256."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .configuration import MODEL_TYPE, OneVisionEncoderConfig
from .errors import CheckpointError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


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
    config = OneVisionEncoderConfig.from_dict(data)
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


def expected_shapes(config: OneVisionEncoderConfig) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape for a config, built on the meta device (no memory)."""
    from .modeling import OneVisionEncoderModel

    with torch.device("meta"):
        model = OneVisionEncoderModel(config)
    return {name: tuple(p.shape) for name, p in model.state_dict().items()}


def _listing(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def validate_checkpoint_dir(directory: str | os.PathLike[str]) -> OneVisionEncoderConfig:
    """Check a checkpoint directory completely before any tensor is loaded; raise one `CheckpointError`."""
    if not Path(directory).is_dir():
        raise CheckpointError(f"{directory}: not a directory")
    config = load_config(directory)
    found = checkpoint_keys(directory)
    expected = expected_shapes(config)
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
    return config


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(directory: str | os.PathLike[str]) -> str:
    """sha256 of the weights: of the single file, or of 'name:sha256' lines over the shards."""
    files = weight_files(directory)
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{f.name}:{file_sha256(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def load_model(
    directory: str | os.PathLike[str],
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    device: str | torch.device = "cpu",
) -> Any:
    """Validate and load a checkpoint directory into `OneVisionEncoderModel` (eval mode)."""
    from .modeling import OneVisionEncoderModel

    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise CheckpointError(
            f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}"
        )
    model = OneVisionEncoderModel.from_pretrained(directory, dtype=dtype, attn_implementation=attn_implementation)
    return model.to(device).eval()
