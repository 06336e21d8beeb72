"""One shard's work after decoding, the same on one machine and in a Ray actor: embed its items, write its file,
describe it for the index."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import Runner

from .batching import Embedded, embed_items
from .decode import Decoded
from .job import SHARD
from .table import shard_table, write_atomically

# Test hook: exit the process hard (os._exit, no cleanup) after writing the Nth shard of a run and before the index
# records it: the worst moment for a crash (a shard file on disk that the index does not know).
CRASH_AFTER = "ONEVISION_CORPUS_CRASH_AFTER_SHARDS"


class RunFailed(RuntimeError):
    """The run stopped on something other than an input (a worker process died, the Ray pipeline failed); the
    finished shards are kept. One line."""


@dataclass(frozen=True)
class ShardOutput:
    """Where and how shards are written (picklable: it travels to Ray actors)."""

    out: str
    precision: str  # fp32 | fp16 | bf16: the stored features
    pooled: bool
    metadata: dict[str, str]  # the Parquet schema metadata (corpus.table.schema_metadata)


def shard_info(shard: int, decoded: Sequence[Decoded], embedded: Sequence[Embedded], seconds: float) -> dict[str, Any]:
    """What the index keeps of a finished shard: rows, tokens, errors by reason (with one example each)."""
    reasons = Counter(e.reason for e in embedded if e.error)
    examples: dict[str, str] = {}
    for e in embedded:
        if e.error:
            examples.setdefault(e.reason, e.error)
    tokens = sum(int(e.features.shape[0]) for e in embedded if e.features is not None and not e.error)
    return {
        "file": SHARD.format(shard),
        "rows": len(decoded),
        "ok": len(decoded) - sum(reasons.values()),
        "tokens": tokens,
        "reasons": dict(reasons),
        "examples": examples,
        "seconds": round(seconds, 3),
    }


def finish_shard(runner: Runner, output: ShardOutput, shard: int, decoded: Sequence[Decoded]) -> dict[str, Any]:
    """Embed a decoded shard, write its Parquet file atomically, return its index entry."""
    started = time.perf_counter()
    embedded = embed_items(runner, decoded)
    table = shard_table(decoded, embedded, output.precision, output.pooled, output.metadata)
    write_atomically(table, Path(output.out) / SHARD.format(shard))
    info = shard_info(shard, decoded, embedded, time.perf_counter() - started)
    info["engine"] = f"{runner.kind} ({runner.provider}) on {runner.device}"
    return info


def crash_hook(written: int) -> None:
    """The test hook `CRASH_AFTER` (see above); nothing unless the variable is set."""
    limit = os.environ.get(CRASH_AFTER)
    if limit and written >= int(limit):
        os._exit(70)
