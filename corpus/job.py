"""A job and its output folder: what makes two runs the same job, the shard plan, and the index of finished shards.

The items are cut into shards of `shard_size` consecutive items (shard k = items [k*size, (k+1)*size)); a shard is
the unit of work and of output (`part-<k>.parquet`), on one machine or on Ray. `_index.json` records each finished
shard (rows, errors by reason, tokens) and the job it belongs to; it is rewritten whole after every shard, to a
temporary file first and then `os.replace`d, so it is always either the old or the new index. A shard file is also
renamed into place only when complete, and its name depends on nothing but its number: a run killed between
writing a shard and recording it leaves a file that the next run writes again, never a duplicate.

Rules for OUT: a missing or empty folder starts a job; a folder whose index names the same job resumes it (all
shards done: nothing to do); another job's folder is refused in one line naming what differs; `--overwrite`
deletes the shards and index found there first and starts again; a non-empty folder without an index is refused
(even with --overwrite: what is there is not ours to delete).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

INDEX = "_index.json"
SHARD = "part-{:05d}.parquet"
INDEX_FORMAT = 1


class JobError(ValueError):
    """The output folder cannot take this job (another job's output, not a corpus folder); one line."""


@dataclass(frozen=True)
class JobSpec:
    """What makes two runs the same job (resuming needs every field equal)."""

    input: str  # INPUT, resolved
    items: int
    items_sha256: str  # corpus.sources.items_sha256: the listing, in order
    artifact_sha256: str
    preprocessor_sha256: str  # of the checkpoint's preprocessor_config.json
    media: dict[str, Any]  # the media options as given (mode, frames, size, max_tokens, canvases)
    features: str  # fp32 | fp16 | bf16
    pooled: bool
    shard_size: int
    max_file_mib: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: dict[str, Any]) -> list[str]:
        """'field: X there, Y here' for every field that differs from `other` (a stored job)."""
        mine = self.to_dict()
        return [
            f"{key}: {_short(other.get(key))} there, {_short(value)} here"
            for key, value in mine.items()
            if other.get(key) != value
        ]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    return text[:12] + "…" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def shard_ranges(items: int, shard_size: int) -> list[range]:
    return [range(start, min(start + shard_size, items)) for start in range(0, items, shard_size)]


def write_json_atomically(data: dict[str, Any], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _ours(path: Path) -> bool:
    name = path.name
    return name == INDEX or (name.startswith("part-") and name.endswith(".parquet")) or ".tmp-" in name


class Index:
    """The output folder's record of finished shards (see the module docstring)."""

    def __init__(self, out: Path, job: JobSpec, shards: int, done: dict[str, dict[str, Any]], resumed: bool):
        self.out, self.job, self.shards, self.done, self.resumed = out, job, shards, done, resumed

    @classmethod
    def open(cls, out: Path, job: JobSpec, shards: int, overwrite: bool = False) -> Index:
        """The index of OUT for this job, resumed or new, or refused (see the module docstring). Writes nothing:
        `start` does, once the run is sure to go ahead."""
        path = out / INDEX
        if out.exists() and not out.is_dir():
            raise JobError(f"{out}: exists and is not a folder (OUT is the output folder)")
        if path.is_file():
            stored = cls._read(path)
            differs = job.differences(stored.get("job", {}))
            if differs and not overwrite:
                raise JobError(
                    f"{out} holds another job's output ({'; '.join(differs)}); pass --overwrite to replace it, "
                    "or choose another OUT"
                )
            if not overwrite:
                return cls(out, job, shards, dict(stored.get("done", {})), resumed=True)
        elif out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise JobError(f"{out}: not empty and holds no corpus index ({INDEX}); choose an empty or new folder")
        return cls(out, job, shards, {}, resumed=False)

    def start(self) -> None:
        """A new job (or --overwrite): clear what a job wrote in OUT, create it, write the empty index."""
        if not self.resumed:
            if self.out.is_dir():
                self.clear(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            self.save()

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JobError(f"{path}: unreadable index ({exc}); pass --overwrite to start again") from None
        return data

    @staticmethod
    def clear(out: Path) -> None:
        """Delete what a corpus job wrote in OUT (shards, index, temporary files); nothing else."""
        for path in out.iterdir():
            if path.is_file() and _ours(path):
                path.unlink()

    def todo(self) -> list[int]:
        return [k for k in range(self.shards) if str(k) not in self.done]

    def record(self, shard: int, info: dict[str, Any]) -> None:
        """Mark a shard done (its file is already in place) and rewrite the index atomically."""
        self.done[str(shard)] = info
        self.save()

    def save(self) -> None:
        data = {"format": INDEX_FORMAT, "job": self.job.to_dict(), "shards": self.shards, "done": self.done}
        write_json_atomically(data, self.out / INDEX)

    @property
    def finished(self) -> bool:
        return len(self.done) == self.shards
