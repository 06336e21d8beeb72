"""Embedding a corpus: offline batch embedding of image and video collections, on one machine or on Ray, resumable.

`python -m corpus INPUT --out OUT --artifact ARTIFACT` (`make embed-corpus`). One module per job:

| module | holds |
|---|---|
| `sources` | INPUT (folder, text file of paths, Parquet/CSV manifest) -> the ordered items |
| `decode` | one item -> its model inputs or its error row (runtime embed's media path), worker-process hooks |
| `batching` | decoded items -> runner calls -> one result each (the one place that groups items into calls) |
| `table` | the Parquet schema, features precision (fp32 / fp16 / bf16 bits), atomic shard writes |
| `job` | the job's identity, the shard plan, OUT's index (`_index.json`, atomic) and its rules |
| `shards` | one shard after decoding: embed, write, describe (shared by both paths) |
| `plan` | the command's options -> a plan (artifact checked, settings fitted to its profile, OUT opened) |
| `local` | one machine: decode worker processes overlapped with inference in the main process |
| `cluster` | Ray Data: decode tasks, an actor pool for inference, shard writes from the actors |
| `summary` | progress bar, the end-of-run summary (items/s, tokens/s, failures by reason) |
| `cli` | the command line |
| `sample` | a small real-media sample corpus with broken files (tests and the benchmark) |
| `bench` | `python -m corpus.bench`: the pipeline against `python -m runtime embed` file by file, and on Ray |

It imports `runtime` and `contract` only (never `models` or `export`).
"""

from .sources import Item, SourceError, list_items
from .table import stored_features

__all__ = ["Item", "SourceError", "list_items", "stored_features"]
