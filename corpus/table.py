"""The output: one Parquet shard per unit of work, one row per input, readable with pyarrow or pandas.

Columns (error rows: `error` non-empty, the array columns null):

| column | type | holds |
|---|---|---|
| `index` | int64 | the item's position in the input listing |
| `path` | string | the input as listed |
| `sha256` | string | sha256 of the file's bytes ("" if it could not be read) |
| `kind`, `mode` | string | image / video / codec; crop / native / codec |
| `shape` | list<int32> | (T, H, W) of the pixel values the model ran |
| `tokens`, `hidden` | int32 | L and the hidden size: `features` holds L × hidden values |
| `positions` | list<int32> | the (L, 3) [t, h, w] patch positions, row-major (codec mode: the selected patches) |
| `details` | string | JSON: frame indices and timeline, original size, codec selection counts |
| `features` | list<float32, float16, uint16> | the artifact's output (its output layer's tokens), (L, hidden) |
| `pooled` | same element type | the mean over tokens (with `--pooled`), computed in float32 |
| `call`, `batch_size` | int32 | which runner call of its shard computed the row, and how many items that call held |
| `artifact_sha256` | string | the artifact's sha256 (its manifest's `sha256`) |
| `error`, `reason` | string | "" on success; else one line and its reason (corpus.decode) |

Features precision (`--features`): `fp32` float32; `fp16` float16 (rounded to nearest); `bf16` the bfloat16 values'
**uint16 bit patterns** (rounded to nearest even from the artifact's output): `np.asarray(col).view(ml_dtypes.bfloat16)`
or `torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)`. The file's schema metadata records it:
`corpus.features_dtype` (float32 | float16 | bfloat16) and `corpus.features_storage` (float32 | float16 |
uint16-bfloat16-bits), beside `corpus.layout`, `corpus.artifact_sha256` and `corpus.job` (the job, JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .batching import Embedded
from .decode import Decoded

FEATURES = {
    "fp32": ("float32", "float32"),
    "fp16": ("float16", "float16"),
    "bf16": ("bfloat16", "uint16-bfloat16-bits"),
}
NUMPY_TYPES = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}
ARROW_TYPES = {"fp32": pa.float32(), "fp16": pa.float16(), "bf16": pa.uint16()}
LAYOUT = "features: (tokens, hidden) row-major; positions: (tokens, 3) [t, h, w] row-major; shape: (T, H, W)"


def storage_values(features: torch.Tensor, precision: str) -> np.ndarray:
    """A float tensor -> the flat numpy values stored for `precision` (bf16: its uint16 bit patterns)."""
    if precision == "bf16":
        return features.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16).ravel()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    return features.to(dtype).contiguous().numpy().ravel()


def stored_features(values: Any, tokens: int, hidden: int, precision: str) -> torch.Tensor:
    """The inverse of `storage_values` for one row (a pyarrow list value, its numpy or Python list form): stored
    values -> (tokens, hidden) tensor of that precision."""
    array = np.asarray(values, dtype=NUMPY_TYPES[precision])
    if precision == "bf16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16).view(tokens, hidden)
    return torch.from_numpy(array.copy()).view(tokens, hidden)


def list_column(rows: Sequence[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    """Flat numpy arrays (None for a null row) -> one Arrow list column, built from offsets (no Python per value)."""
    lengths = [0 if r is None else r.size for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    present = [r for r in rows if r is not None]
    flat = np.concatenate(present) if present else np.zeros(0)
    values = pa.array(flat, type=value_type)
    mask = pa.array([r is None for r in rows], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)


def _row_arrays(d: Decoded, e: Embedded, precision: str, pooled: bool) -> dict[str, Any]:
    ok = e.features is not None and not e.error
    features = e.features if ok else None
    return {
        "shape": np.asarray(d.shape, np.int32) if ok else None,
        "tokens": int(features.shape[0]) if features is not None else None,
        "hidden": int(features.shape[1]) if features is not None else None,
        "positions": d.positions.astype(np.int32).ravel() if ok and d.positions is not None else None,
        "features": storage_values(features, precision) if features is not None else None,
        "pooled": storage_values(features.float().mean(0), precision) if features is not None and pooled else None,
    }


def shard_table(
    decoded: Sequence[Decoded], embedded: Sequence[Embedded], precision: str, pooled: bool, metadata: dict[str, str]
) -> pa.Table:
    """One shard's rows (decoded and embedded in the same order) as an Arrow table with the schema metadata."""
    arrays = [_row_arrays(d, e, precision, pooled) for d, e in zip(decoded, embedded, strict=True)]
    value_type = ARROW_TYPES[precision]
    columns: dict[str, pa.Array] = {
        "index": pa.array([d.index for d in decoded], pa.int64()),
        "path": pa.array([d.path for d in decoded], pa.string()),
        "sha256": pa.array([d.sha256 for d in decoded], pa.string()),
        "kind": pa.array([d.kind if not e.error else "" for d, e in zip(decoded, embedded)], pa.string()),
        "mode": pa.array([d.mode if not e.error else "" for d, e in zip(decoded, embedded)], pa.string()),
        "shape": list_column([a["shape"] for a in arrays], pa.int32()),
        "tokens": pa.array([a["tokens"] for a in arrays], pa.int32()),
        "hidden": pa.array([a["hidden"] for a in arrays], pa.int32()),
        "positions": list_column([a["positions"] for a in arrays], pa.int32()),
        "details": pa.array([json.dumps(d.details, sort_keys=True) if d.details else "" for d in decoded]),
        "features": list_column([a["features"] for a in arrays], value_type),
    }
    if pooled:
        columns["pooled"] = list_column([a["pooled"] for a in arrays], value_type)
    columns |= {
        "call": pa.array([e.call for e in embedded], pa.int32()),
        "batch_size": pa.array([e.batch_size for e in embedded], pa.int32()),
        "artifact_sha256": pa.array([metadata["corpus.artifact_sha256"]] * len(decoded), pa.string()),
        "error": pa.array([e.error for e in embedded], pa.string()),
        "reason": pa.array([e.reason for e in embedded], pa.string()),
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})


def schema_metadata(precision: str, artifact_sha256: str, job: dict[str, Any]) -> dict[str, str]:
    dtype, storage = FEATURES[precision]
    return {
        "corpus.features_dtype": dtype,
        "corpus.features_storage": storage,
        "corpus.layout": LAYOUT,
        "corpus.artifact_sha256": artifact_sha256,
        "corpus.job": json.dumps(job, sort_keys=True),
    }


def write_atomically(table: pa.Table, target: Path) -> None:
    """Write a Parquet file under a hidden temporary name (readers skip names starting with '.'), then rename it
    into place: a reader or a resumed run never sees half a shard."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
