"""The build skeleton every builder shares: check the request, refuse an existing artifact, meter the build,
produce the files in a staging folder, move them into place and write the manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.export import ExportedProgram

from contract.manifest import write_manifest
from models import OneVisionEncoderConfig

from .artifact import (
    artifact_path,
    check_request,
    install,
    make_manifest,
    packed_attention,
    refuse_existing,
    staging,
)
from .base import BuildRequest, BuildResult, ExportError
from .inputs import describe
from .measure import BuildMeter
from .trace import export_program
from .wrapper import EncoderExport, load_wrapper


@dataclass
class BuildContext:
    request: BuildRequest
    config: OneVisionEncoderConfig
    target: Path  # final artifact path
    staged: Path  # where to write the artifact now (same name, inside the staging folder)
    meter: BuildMeter


@dataclass
class Produced:
    """What a builder made in the staging folder."""

    extra_files: list[Path] = field(default_factory=list)  # written beside the artifact (e.g. ONNX external data)
    extra: dict[str, Any] = field(default_factory=dict)  # manifest.extra
    build: dict[str, Any] = field(default_factory=dict)  # merged into manifest.build (e.g. verify)
    device: str | None = None
    tools: tuple[str, ...] = ()


def run_build(
    kind: str,
    request: BuildRequest,
    unavailable: Callable[[BuildRequest], str | None],
    produce: Callable[[BuildContext], Produced],
) -> BuildResult:
    config = check_request(request)
    target = artifact_path(request, kind, config)
    refuse_existing(target, request.overwrite)
    reason = unavailable(request)
    if reason:
        raise ExportError(f"{kind}: {reason}")
    meter = BuildMeter(kind, quiet=bool(request.options.get("quiet", False)))
    out_dir = target.parent
    with staging(out_dir) as folder:
        context = BuildContext(request, config, target, folder / target.name, meter)
        produced = produce(context)
        meter.stage("install", str(target))
        install([context.staged, *produced.extra_files], out_dir, request.overwrite)
        build = {**meter.finish(), **produced.build}
    manifest = make_manifest(request, kind, config, build, produced.extra, produced.device, produced.tools)
    write_manifest(target, manifest, side_files=[f.name for f in produced.extra_files])
    size = sum(int(f["size"]) for f in manifest.files)
    meter.say(f"wrote {target} ({size / 2**20:.1f} MiB) in {build['seconds']:.1f}s, peak {build['peak_rss_mib']} MiB")
    return BuildResult(kind, target, manifest, float(build["seconds"]), float(build["peak_rss_mib"]))


def load_and_export(ctx: BuildContext, kind: str) -> tuple[EncoderExport, ExportedProgram]:
    """The first two stages the torch-based kinds share: load the export wrapper, then torch.export it."""
    request, meter = ctx.request, ctx.meter
    meter.stage("load", f"{request.model_dir} as {request.precision} on {request.device}")
    attention = packed_attention(kind, request)
    wrapper = load_wrapper(request.model_dir, request.precision, request.output_layer, request.device, attention)
    meter.stage("torch.export", describe(request.profile))
    return wrapper, export_program(wrapper, request.profile, request.device)
