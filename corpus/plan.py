"""From the command's options to a plan: the artifact (manifest checked), the processor, the media settings fitted
to the artifact's profile (`runtime.embed.fit_to_profile`, as `python -m runtime embed` does), the items, the
shards and the output folder's index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.manifest import Manifest, file_sha256, read_manifest
from contract.profiles import ShapeProfile
from runtime.embed import MediaSettings, fit_to_profile, processor_dir, timeline_of
from runtime.media import MODES, PREPROCESSOR_FILE, MediaError, load_processor

from .decode import DecodeConfig
from .job import Index, JobSpec, shard_ranges
from .shards import ShardOutput
from .sources import Item, SourceError, items_sha256, list_items
from .table import FEATURES, schema_metadata


class OptionError(ValueError):
    """Options that do not go together; one line."""


@dataclass(frozen=True)
class Options:
    """What `python -m corpus` was asked (the command line, as data)."""

    input: str
    out: str
    artifact: str
    model: str | None = None  # checkpoint folder whose preprocessor_config.json is used (default: the artifact's)
    mode: str = "crop"
    frames: int | None = None
    size: int | None = None
    max_tokens: int | None = None
    canvases: int | None = None
    features: str = "fp32"
    pooled: bool = False
    path_column: str = "path"
    selection_column: str | None = None
    shard_size: int = 64
    max_file_mib: float = 2048.0
    device: str | None = None
    overwrite: bool = False


@dataclass
class Plan:
    """Everything a run needs; the same for one machine and Ray."""

    options: Options
    manifest: Manifest
    profile: ShapeProfile
    items: list[Item]
    ranges: list[range]
    decode: DecodeConfig
    output: ShardOutput
    index: Index
    notes: list[str] = field(default_factory=list)

    @property
    def artifact(self) -> str:
        return self.options.artifact

    def todo_items(self) -> int:
        return sum(len(self.ranges[k]) for k in self.index.todo())


def check_options(options: Options) -> None:
    if options.mode not in MODES:
        raise OptionError(f"--mode must be one of {', '.join(MODES)}, got {options.mode!r}")
    if options.features not in FEATURES:
        raise OptionError(f"--features must be one of {', '.join(FEATURES)}, got {options.features!r}")
    if options.selection_column and options.mode != "codec":
        raise OptionError(f"--selection-column needs --mode codec (got --mode {options.mode})")
    if options.shard_size < 1:
        raise OptionError(f"--shard-size must be >= 1, got {options.shard_size}")
    if not options.max_file_mib > 0:
        raise OptionError(f"--max-file-mib must be > 0, got {options.max_file_mib}")


def media_options(options: Options) -> dict[str, Any]:
    keys = ("mode", "frames", "size", "max_tokens", "canvases")
    return {key: getattr(options, key) for key in keys}


def job_spec(options: Options, items: list[Item], manifest: Manifest, preprocessor: Path) -> JobSpec:
    return JobSpec(
        input=str(Path(options.input).resolve()),
        items=len(items),
        items_sha256=items_sha256(items),
        artifact_sha256=manifest.sha256,
        preprocessor_sha256=file_sha256(preprocessor / PREPROCESSOR_FILE),
        media=media_options(options),
        features=options.features,
        pooled=options.pooled,
        shard_size=options.shard_size,
        max_file_mib=options.max_file_mib,
    )


def prepare(options: Options, start_decoding: Callable[[], object] = lambda: None) -> Plan:
    """Check the options, INPUT, OUT (resumed, new, or refused), the artifact (every file against its manifest) and
    the processor; then create OUT if new. Nothing is written before every check passed. `start_decoding` is
    called as soon as OUT is known to have work, before the slow checks (hashing the artifact, loading the
    processor), so that decode workers start meanwhile."""
    check_options(options)
    manifest = read_manifest(options.artifact, verify=False)  # the JSON; every file is checked below
    preprocessor = processor_dir(options.model, None, dict(manifest.source))
    if not (preprocessor / PREPROCESSOR_FILE).is_file():
        raise MediaError(f"{preprocessor}: no {PREPROCESSOR_FILE} (the checkpoint's image processor settings)")
    items = list_items(
        options.input,
        path_column=options.path_column,
        selection_column=options.selection_column,
        exclude=Path(options.out),
    )
    if not items:
        raise SourceError(f"{options.input}: lists no files")
    job = job_spec(options, items, manifest, preprocessor)
    ranges = shard_ranges(len(items), options.shard_size)
    index = Index.open(Path(options.out), job, len(ranges), overwrite=options.overwrite)
    if index.todo():
        start_decoding()
    read_manifest(options.artifact, verify=True)
    profile = ShapeProfile.from_dict(manifest.profile)
    settings = MediaSettings(**media_options(options), timeline=timeline_of(dict(manifest.source).get("config") or {}))
    fitted, notes = fit_to_profile(settings, load_processor(preprocessor), profile)
    index.start()
    metadata = schema_metadata(options.features, manifest.sha256, job.to_dict())
    return Plan(
        options=options,
        manifest=manifest,
        profile=profile,
        items=items,
        ranges=ranges,
        decode=DecodeConfig(str(preprocessor), fitted, int(options.max_file_mib * 2**20)),
        output=ShardOutput(str(Path(options.out).resolve()), options.features, options.pooled, metadata),
        index=index,
        notes=notes,
    )
