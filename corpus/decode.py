"""Decoding: one item -> `Decoded` (its model inputs as numpy arrays, or its error row), in a worker process or a Ray
task. The media path is `runtime embed`'s own (`runtime.embed.embed_inputs` with settings fitted to the artifact's
profile by `fit_to_profile`), so a row's inputs are exactly what `python -m runtime embed FILE` would run.

Every failure becomes a reason and one line, never an exception out of `decode_item`:

- `missing`: the file is missing, not a regular file, or cannot be read
- `empty`: the file has 0 bytes
- `unsupported`: the extension is neither an image's nor a video's (`corpus.sources`)
- `too large`: over `--max-file-mib`, or an image over Pillow's decompression-bomb pixel limit
- `media`: runtime.media refused it: damaged or truncated, undecodable, too small for native mode, fewer frames
  than asked, a bad selection file
- `profile`: the artifact's shape profile cannot take its inputs: the runtime's InputError (found at inference,
  `corpus.batching`)
- `internal`: anything else (exception type and message); the run goes on
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import InputError
from contract.manifest import file_sha256
from runtime.embed import MediaSettings, embed_inputs
from runtime.media import ImageTooLarge, load_processor, load_selection

from .sources import Item, media_type

REASONS = ("missing", "empty", "unsupported", "too large", "media", "profile", "internal")


@dataclass(frozen=True)
class DecodeConfig:
    """What a decoder needs: the processor's checkpoint folder, the media settings (fitted), the file-size cap."""

    processor_dir: str
    settings: MediaSettings
    max_file_bytes: int


@dataclass
class Decoded:
    """One item after decoding: model inputs without the batch axis, or `error` and `reason`."""

    index: int
    path: str
    sha256: str = ""
    pixel_values: np.ndarray | None = None  # (3, T, H, W) float32, the processor's output
    positions: np.ndarray | None = None  # (L, 3) int64
    kind: str = ""
    mode: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    reason: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        """(T, H, W) of the pixel values; () for an error row."""
        return () if self.pixel_values is None else tuple(self.pixel_values.shape[1:])

    def failed(self, reason: str, error: str) -> Decoded:
        self.reason, self.error = reason, error
        self.pixel_values = self.positions = None
        return self


def check_file(item: Item, max_file_bytes: int) -> tuple[str, str] | None:
    """(reason, message) if the file cannot be decoded at all (missing, empty, too large, unsupported type)."""
    path = Path(item.file)
    try:
        stat = path.stat()
    except OSError as exc:
        return "missing", f"{item.path}: {exc.strerror or exc}"
    if not path.is_file():
        return "missing", f"{item.path}: not a regular file"
    if stat.st_size == 0:
        return "empty", f"{item.path}: empty file (0 bytes)"
    if media_type(path) is None:
        suffix = path.suffix or "(no extension)"
        return "unsupported", f"{item.path}: unsupported file type {suffix!r} (neither an image nor a video extension)"
    if stat.st_size > max_file_bytes:
        limit = max_file_bytes / 2**20
        return (
            "too large",
            f"{item.path}: {stat.st_size / 2**20:.1f} MiB, over the {limit:g} MiB limit (--max-file-mib)",
        )
    return None


def decode_item(index: int, item: Item, processor: Any, config: DecodeConfig) -> Decoded:
    """One item -> Decoded; every failure becomes its reason and message (see the module docstring)."""
    out = Decoded(index=index, path=item.path)
    refused = check_file(item, config.max_file_bytes)
    if refused is not None:
        return out.failed(*refused)
    try:
        out.sha256 = file_sha256(item.file)
        selection = load_selection(item.selection) if item.selection else None
        inputs = embed_inputs(item.file, processor, config.settings, selection=selection)
    except ImageTooLarge as exc:
        return out.failed("too large", str(exc))
    except InputError as exc:
        return out.failed("media", str(exc))
    except OSError as exc:
        return out.failed("missing", f"{item.path}: cannot read ({exc})")
    except Exception as exc:  # anything else is a row too: nothing is lost, the run goes on
        return out.failed("internal", f"{item.path}: {type(exc).__name__}: {exc}")
    out.pixel_values = inputs.pixel_values[0].numpy()
    out.positions = inputs.patch_positions[0].numpy()
    out.kind, out.mode, out.details = inputs.kind, inputs.mode, inputs.details
    return out


@functools.lru_cache(maxsize=4)
def processor_for(processor_dir: str) -> Any:
    """The image processor of a checkpoint folder, loaded once per process (worker process or Ray worker)."""
    return load_processor(processor_dir)


def decode_with(config: DecodeConfig, index: int, item: Item) -> Decoded:
    return decode_item(index, item, processor_for(config.processor_dir), config)


# -- worker processes (concurrent.futures, spawn) ----------------------------------------------------------------


def init_worker() -> None:
    """Process-pool initializer: one decoding thread per worker process, exit with the parent, and the imports a
    decode needs done now (the pool starts while the main process prepares; the processor itself is loaded by the
    first task, once per process: `processor_for`)."""
    import torch
    from transformers import AutoImageProcessor  # noqa: F401  (what load_processor imports)

    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


def _exit_with_parent() -> None:
    """Wait for the parent process to end, then end this worker: a parent killed hard (SIGKILL, os._exit) leaves no
    worker behind, blocked forever on its task queue."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(0)
