"""python -m export {pt2,aoti,onnx,trt,trt-rtx,all}: build deployment artifacts of the encoder.

Each run ends with a table of what was written. Problems (no GPU for a CUDA artifact, a bad profile, an existing
artifact without --overwrite, ...) are one `error:` line and a non-zero exit status; `all` builds every kind this
machine can build and says in one line why it skips the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from contract.backends import BACKENDS
from contract.manifest import KINDS, PRECISIONS, ManifestError, read_manifest
from contract.profiles import DEFAULT_PROFILE, PROFILES, Profile, ProfileError, requested_profiles
from models import CheckpointError, weights_sha256

from . import BUILDERS, get_builder
from .artifact import artifact_path
from .base import BuildRequest, BuildResult, ExportError
from .verify import shared_eager_reference

ENGINE_KINDS = tuple(k for k, b in BACKENDS.items() if b.multi_profile)  # one optimisation profile per --profile
EXIT_FAILED = 1
EXIT_USAGE = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Build torch.export (pt2), AOTInductor (aoti), ONNX (onnx), TensorRT (trt) or TensorRT-RTX "
        "(trt-rtx, ahead of time on any machine) artifacts, each with "
        "a JSON manifest beside it; `all` builds every kind this machine can.",
        epilog=f"Named profiles: {', '.join(PROFILES)}. Artifacts are named <out>/<kind>-<precision>-<profile>"
        "[-L<layers>].<suffix>.",
    )
    p.add_argument("kind", choices=[*KINDS, "all"], help="artifact kind, or all")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the synthetic full-size checkpoint)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="weights/activations dtype (default fp32)")
    p.add_argument(
        "--profile",
        action="append",
        metavar="NAME|JSON",
        help=f"shape profile name or JSON file (default {DEFAULT_PROFILE}); repeatable for trt/trt-rtx (one "
        "optimisation profile each; torch and ONNX kinds take the first)",
    )
    p.add_argument("--min-shapes", metavar="SPEC", help="trtexec-style, e.g. pixel_values:1x3x1x224x224")
    p.add_argument("--opt-shapes", metavar="SPEC", help="with --min-shapes/--max-shapes: a profile named 'custom'")
    p.add_argument("--max-shapes", metavar="SPEC")
    p.add_argument(
        "--output-layer", type=int, default=-1, metavar="K", help="hidden state to return: -1 last (default), -2 ..."
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="target device (default cpu)")
    p.add_argument("--out", type=Path, default=Path("artifacts"), help="output folder (default artifacts)")
    p.add_argument("--overwrite", action="store_true", help="replace existing artifacts (refused otherwise)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 20, >= 18)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder-specific option (VALUE parsed as JSON when it is JSON), e.g. opt_level=5 for trt, "
        "targets=8.9,12.0 for trt-rtx",
    )
    p.add_argument(
        "--kinds",
        metavar="LIST",
        help="with `all`: only these kinds (comma-separated); each must build (one this machine cannot build is an "
        "error, where plain `all` skips it saying why)",
    )
    p.add_argument("--quiet", action="store_true", help="no stage lines, only the final table")
    p.add_argument("--traceback", action="store_true", help="show the full traceback of unexpected errors")
    return p


def _profiles(args: argparse.Namespace) -> list[Profile]:
    requested = requested_profiles(args.profile or [], args.min_shapes, args.opt_shapes, args.max_shapes)
    return requested or [PROFILES[DEFAULT_PROFILE]]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"quiet": args.quiet}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExportError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if args.opset is not None:
        options["opset"] = args.opset
    return options


def _converts(kind: str, onnx_artifact: Path, precision: str) -> bool:
    """Whether `kind` builds from the ONNX artifact `all` just made (of `precision`): its description says which
    graph it converts (contract/backends.py `from_onnx`), so nothing is exported twice."""
    return BACKENDS[kind].onnx_precision(precision) == precision


def _kinds(args: argparse.Namespace) -> list[str]:
    if args.kind != "all":
        if args.kinds:
            raise ExportError(f"--kinds goes with `all`, not with {args.kind}")
        return [args.kind]
    if not args.kinds:
        return list(BUILDERS)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in BUILDERS]
    if unknown:
        raise ExportError(f"--kinds: unknown kind(s) {', '.join(unknown)} (known: {', '.join(BUILDERS)})")
    return [k for k in BUILDERS if k in kinds]


def _model_dir(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return Path(args.model)
    from models.synthetic import ensure_default

    return ensure_default("full")


def _size(result: BuildResult) -> float:
    files = [result.path, *(result.path.with_name(name) for name in result.manifest.side_files)]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def table(results: list[BuildResult]) -> str:
    header = ("kind", "file", "size MiB", "precision", "profile", "seconds", "peak MiB")
    rows = [
        (
            r.kind,
            str(r.path),
            f"{_size(r):.1f}",
            r.manifest.precision,
            str(r.manifest.profile.get("name", "")),
            f"{r.seconds:.1f}",
            f"{r.peak_rss_mib:.0f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    return "\n".join(lines)


def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        profiles = _profiles(args)
        options = _options(args)
        kinds = _kinds(args)
    except (ProfileError, ExportError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.kind not in (*ENGINE_KINDS, "all") and len(profiles) > 1:
        _error(f"{args.kind} builds one shape profile, got {len(profiles)}; several profiles are for trt/trt-rtx")
        return EXIT_USAGE
    try:
        model_dir = _model_dir(args)
    except (OSError, CheckpointError) as exc:
        _error(str(exc))
        return EXIT_FAILED
    if args.kind == "all" and len(profiles) > 1:
        print(
            f"note: pt2, aoti and onnx take the first profile ({profiles[0].name}); trt/trt-rtx take all",
            file=sys.stderr,
        )
    results: list[BuildResult] = []
    failures = kept = 0
    onnx_artifact: Path | None = None  # `all`: kinds that convert the ONNX graph take the one just built
    for kind in kinds:
        request = BuildRequest(
            model_dir=model_dir,
            precision=args.precision,
            profiles=profiles if kind in ENGINE_KINDS else profiles[:1],
            out_dir=args.out,
            output_layer=args.output_layer,
            device=args.device,
            options=dict(options),
            overwrite=args.overwrite,
        )
        if onnx_artifact is not None and len(profiles) == 1 and _converts(kind, onnx_artifact, args.precision):
            request.options.setdefault("onnx", str(onnx_artifact))
        try:
            builder = get_builder(kind)
            reason = builder.unavailable(request)
        except ExportError as exc:  # the kind's module or toolchain is missing here
            builder, reason = None, str(exc).removeprefix(f"{kind}: ")
        try:
            if args.kind == "all" and not args.overwrite and (path := up_to_date(kind, request)):
                print(f"keep {kind}: {path} is up to date (same weights, precision, profile; --overwrite rebuilds)")
                kept += 1
                onnx_artifact = path if BACKENDS[kind].onnx_graph else onnx_artifact
                continue
            if reason or builder is None:
                if args.kind == "all" and not args.kinds:  # "what this machine can"; named kinds must build
                    print(f"skip {kind}: {reason}", file=sys.stderr, flush=True)
                    continue
                raise ExportError(f"{kind}: {reason}")
            results.append(builder.build(request))
            onnx_artifact = results[-1].path if BACKENDS[kind].onnx_graph else onnx_artifact
        except (ExportError, ProfileError, CheckpointError, ManifestError, FileExistsError) as exc:
            _error(str(exc) if str(exc).startswith(f"{kind}:") else f"{kind}: {exc}")
            failures += 1
        except Exception as exc:  # an exporter failure: one line, the traceback only on request
            if args.traceback:
                traceback.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _error(f"{kind}: {type(exc).__name__}: {first} (--traceback for details)")
            failures += 1
    if results:
        print(table(results), flush=True)
    elif not failures and not kept:
        _error("nothing was built")
        return EXIT_FAILED
    return EXIT_FAILED if failures else 0


def up_to_date(kind: str, request: BuildRequest) -> Path | None:
    """The existing artifact `request` would write, if its manifest verifies and it was built from the same weights,
    precision, profile(s) and output layer: `all` keeps it instead of refusing, so `make all` can run again."""
    path = artifact_path(request, kind)
    if not path.exists():
        return None
    try:
        manifest = read_manifest(path)
    except ManifestError:
        return None
    same = (
        manifest.source.get("weights_sha256") == weights_sha256(request.model_dir)
        and manifest.precision == request.precision
        and manifest.output_layer == request.output_layer
        and manifest.profile == request.profile.to_dict()
    )
    return path if same else None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_libraries()
    with shared_eager_reference():  # `all`: every kind is checked against the same eager output, computed once
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
