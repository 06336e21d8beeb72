"""python -m parity: every artifact x every case x eager references, with a calibrated pass rule.

    python -m parity                                   # synthetic full-size checkpoint, artifacts/ (exported if empty)
    python -m parity --model checkpoints/synthetic-tiny --artifacts-dir /tmp/arts --cases all
    python -m parity --replay results/parity/20250101-120000   # re-run the saved inputs of a report

Exit status: 0 all passed, 1 something failed (or an artifact is broken), 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.backends import BACKENDS
from contract.compat import cpu_capability, native_bf16_cpu
from contract.manifest import KINDS, PRECISIONS
from contract.profiles import DEFAULT_PROFILE, PROFILES, ProfileError, resolve_profile
from models import CheckpointError, OneVisionEncoderConfig, load_config, weights_sha256

from .artifacts import EAGER_KINDS, ArtifactUnderTest, discover, eager_artifact, from_file, select
from .cases import CASES, CPU_FULL_SIZE_CASES, CPU_FULL_SIZE_PACKED_CASES, PACKED_CASES, CaseInput, parse_cases
from .references import (
    CPU_FULL_SIZE_REFERENCES,
    DEFAULT_REFERENCES,
    REFERENCES,
    has_remote_code,
    parse_references,
)
from .report import summary_table, write_reports
from .suite import SMALL_MODEL_PARAMS, SuiteConfig, count_params, replay_inputs, run_suite
from .tolerances import ToleranceError, Tolerances, load_tolerances

EXIT_FAILED = 1
EXIT_USAGE = 2
# What an empty artifact folder gets exported first, per device (contract/backends.py `auto_export`).
AUTO_EXPORT_CPU = tuple(k for k, b in BACKENDS.items() if "cpu" in b.auto_export)
CACHE = "reference-cache"  # under --results-dir unless --reference-cache names another folder
AUTO_EXPORT_CUDA = tuple(k for k, b in BACKENDS.items() if "cuda" in b.auto_export)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m parity",
        description="Compare every artifact against eager PyTorch references (fp32, bf16, float64 golden) over a "
        "shape matrix; write results/parity/<name>/report.md|json with the inputs; exit 1 if anything fails.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="cases (fitted to each artifact's profile, or skipped as 'outside profile'):\n"
        + "\n".join(f"  {k:17s} {v[0]}" for k, v in CASES.items())
        + "\npacked cases (packed artifacts run these instead, each item judged against its own eager reference):\n"
        + "\n".join(f"  {k:17s} {v[0]}" for k, v in PACKED_CASES.items())
        + f"\n\nOn a CPU with a full-size model the defaults are trimmed (and the run says so): cases\n"
        f"{','.join(CPU_FULL_SIZE_CASES + CPU_FULL_SIZE_PACKED_CASES)}, references "
        f"{','.join(CPU_FULL_SIZE_REFERENCES)};\n"
        "--cases all / --references all run everything.\n\n"
        "make parity [MODEL=dir] [OUT=artifacts-dir] [ARTIFACTS=list] [CASES=list] [DEVICE=cpu|cuda] runs the same.\n"
        "Exit status: 0 all passed, 1 a row failed or an artifact is broken, 2 usage error.",
    )
    _what_args(p)
    _export_args(p)
    _output_args(p)
    _reference_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _what_args(p: argparse.ArgumentParser) -> None:
    """What is compared: the model, the artifacts, the cases, the devices and references."""
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the synthetic full-size checkpoint)")
    p.add_argument(
        "--artifacts-dir", type=Path, default=Path("artifacts"), help="artifact folder (default %(default)s)"
    )
    p.add_argument(
        "--artifacts",
        metavar="LIST",
        help="comma-separated artifact paths, file names or name prefixes (pt2, onnx-fp32, ...) and/or eager "
        f"stand-ins ({', '.join(EAGER_KINDS)}); default: every artifact in --artifacts-dir",
    )
    p.add_argument(
        "--cases",
        metavar="LIST",
        help="comma-separated case names (batched and packed: each artifact runs those of its kind), all, or "
        "cpu-quick (default: see below)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), help="reference device (default: cuda if present)")
    p.add_argument(
        "--references",
        metavar="LIST",
        help=f"references shown besides the float64 golden: {', '.join(n for n in REFERENCES if n != 'golden-fp64')}"
        f", or all (default: {','.join(DEFAULT_REFERENCES)})",
    )
    p.add_argument(
        "--remote-reference",
        action="store_true",
        help="also compare against the checkpoint's own modeling code (modeling_onevision_encoder.py beside "
        "config.json, loaded as AutoModel with trust_remote_code=True would): runs code shipped with the checkpoint, "
        "off by default",
    )


def _export_args(p: argparse.ArgumentParser) -> None:
    """What to export first."""
    p.add_argument(
        "--export",
        metavar="KINDS",
        help="export these kinds (comma-separated, or all) into --artifacts-dir first, reusing existing ones; without "
        f"it, an empty folder gets {','.join(AUTO_EXPORT_CPU)} (CPU) exported for --profile",
    )
    p.add_argument("--precision", default="fp32", metavar="LIST", help="precisions to --export (default fp32)")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile to --export (default {DEFAULT_PROFILE})")


def _output_args(p: argparse.ArgumentParser) -> None:
    """Where results go, replays, localisation, tolerances and inputs."""
    p.add_argument("--results-dir", type=Path, default=Path("results/parity"), help="default %(default)s")
    p.add_argument("--name", help="results subfolder (default: a UTC timestamp)")
    p.add_argument("--replay", type=Path, metavar="DIR", help="re-run the saved inputs of an earlier results folder")
    p.add_argument(
        "--localise",
        choices=("auto", "rebuild", "off"),
        default="auto",
        help="on failure, find the first failing layer: auto (graph probes for pt2/onnx; truncated rebuilds for "
        "compiled kinds only on small models), rebuild (always allow rebuilds), off",
    )
    p.add_argument("--tolerances", type=Path, help="tolerance file (default parity/tolerances.json)")
    p.add_argument("--seed", type=int, default=0, help="input seed (default 0)")


def _reference_args(p: argparse.ArgumentParser) -> None:
    """Where artifacts run and how references are computed and kept."""
    p.add_argument("--max-tokens", type=int, default=0, help="skip cases with more than this many B*L tokens (0: none)")
    p.add_argument(
        "--run-on",
        action="append",
        default=[],
        metavar="KIND=DEVICE",
        help="run the artifacts of a kind that moves between devices on DEVICE instead of --device (e.g. onnx=cpu "
        "where onnxruntime has no CUDA provider); repeatable",
    )
    p.add_argument(
        "--reference-cache",
        type=Path,
        help="references kept on disk between runs, keyed by weights, code, input, layers, torch and device "
        "(default <results-dir>/reference-cache)",
    )
    p.add_argument("--no-reference-cache", action="store_true", help="compute every reference, keep none")
    p.add_argument(
        "--reference-memory-gib",
        type=float,
        help="memory one reference computation may take: larger cases run a few samples at a time, a case that "
        "does not fit is an error on its own rows (default: 80%% of the GPU, half the host's available memory)",
    )
    p.add_argument(
        "--aten-bf16-references",
        action="store_true",
        help="on a CPU without native bf16 (no AVX-512 BF16/AMX), run the bf16 references' GEMMs with ATen's own "
        "bf16 kernel (~25x slower there) instead of fp32 GEMMs on the same values (the report says which)",
    )


def _device(arg: str | None) -> torch.device:
    if arg == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here")
    return torch.device(arg or ("cuda" if torch.cuda.is_available() else "cpu"))


def _export(
    kinds: list[str], precisions: list[str], profile_name: str, model_dir: Path, out: Path, device: str
) -> list[str]:
    """Export what is missing; returns one line per kind that could not be built (skipped, not failed)."""
    from export import BuildRequest, ExportError, build
    from export.artifact import artifact_path

    profile = resolve_profile(profile_name)
    problems = []
    for kind in kinds:
        for precision in precisions:
            dev = BACKENDS[kind].build_device or device
            request = BuildRequest(model_dir, precision, [profile], out, device=dev)
            try:
                target = artifact_path(request, kind)
                if target.is_file() and target.with_name(target.name + ".json").is_file():
                    print(f"parity: reusing {target}", file=sys.stderr)
                    continue
                print(f"parity: exporting {kind} {precision} {profile.name} -> {out}", file=sys.stderr)
                build(kind, request)
            except ExportError as exc:
                problems.append(f"{kind} {precision}: not exported: {exc}")
    return problems


@dataclass
class Settings:
    """The command line, checked: everything main() needs before any artifact is touched."""

    device: torch.device
    tolerances: Tolerances
    model_dir: Path
    config: OneVisionEncoderConfig
    sha: str
    cases: list[str]
    references: list[str]
    precisions: list[str]
    run_on: dict[str, str]
    replay: list[CaseInput] | None
    replay_report: dict[str, Any]
    big_on_cpu: bool


def _run_on(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        kind, sep, device = item.partition("=")
        if not sep or kind not in KINDS or device not in ("cpu", "cuda"):
            raise ValueError(f"--run-on expects KIND=cpu|cuda with KIND one of {', '.join(KINDS)}, got {item!r}")
        if not BACKENDS[kind].movable:
            raise ValueError(f"--run-on {item}: {kind} artifacts run where they were built, they do not move")
        out[kind] = device
    return out


def _settings(args: argparse.Namespace) -> Settings:
    """Everything the command line decides, checked (ValueError & co: a usage error)."""
    device = _device(args.device)
    tolerances = load_tolerances(args.tolerances)
    replay, replay_report = replay_inputs(args.replay) if args.replay else (None, {})
    model_dir = args.model or (Path(str(replay_report["model_dir"])) if replay_report.get("model_dir") else None)
    if model_dir is None:
        from models.synthetic import ensure_default

        model_dir = ensure_default("full")
    config = load_config(model_dir)
    big_on_cpu = device.type == "cpu" and count_params(model_dir) >= SMALL_MODEL_PARAMS
    cases = parse_cases(args.cases, CPU_FULL_SIZE_CASES + CPU_FULL_SIZE_PACKED_CASES if big_on_cpu else None)
    references = parse_references(args.references, CPU_FULL_SIZE_REFERENCES if big_on_cpu else DEFAULT_REFERENCES)
    if args.remote_reference:
        if not has_remote_code(model_dir):
            raise ValueError(f"--remote-reference: {model_dir} has no modeling_onevision_encoder.py beside config.json")
        references += [n for n in ("remote-fp32", "remote-bf16") if n not in references]
    precisions = [s.strip() for s in args.precision.split(",") if s.strip()]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ValueError(f"--precision: unknown {', '.join(bad)} (use {', '.join(PRECISIONS)})")
    if args.profile not in PROFILES and not Path(args.profile).is_file():
        resolve_profile(args.profile)  # raises ProfileError with the known names
    return Settings(device, tolerances, Path(model_dir), config, weights_sha256(model_dir), cases, references,
                    precisions, _run_on(args.run_on), replay, replay_report, big_on_cpu)  # fmt: skip


def _select_artifacts(args: argparse.Namespace, st: Settings, notes: list[str]) -> list[ArtifactUnderTest] | str:
    """The artifacts under test (exported first with --export, or when the folder is empty), or a usage error."""
    adir: Path = args.artifacts_dir
    if args.export:
        kinds = list(KINDS) if args.export == "all" else [k.strip() for k in args.export.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            return f"--export: unknown kind(s) {', '.join(unknown)} (use {', '.join(KINDS)} or all)"
        notes += _export(kinds, st.precisions, args.profile, st.model_dir, adir, st.device.type)
    paths, eager, unmatched = select(discover(adir), args.artifacts, adir)
    if st.replay is not None and not args.artifacts:
        recorded = [a for a in st.replay_report.get("artifacts", []) if isinstance(a, dict)]
        paths = [Path(str(a["path"])) for a in recorded if a.get("path") and Path(str(a["path"])).is_file()]
        eager = [str(a["name"]) for a in recorded if a.get("kind") == "eager" and a.get("name") in EAGER_KINDS]
    if unmatched:
        return f"--artifacts: nothing matches {', '.join(unmatched)} in {adir}"
    if not paths and not eager and not args.export and st.replay is None:
        kinds = list(AUTO_EXPORT_CUDA if st.device.type == "cuda" else AUTO_EXPORT_CPU)
        print(f"parity: no artifacts in {adir}: exporting {', '.join(kinds)} fp32 for profile {args.profile} first")
        notes += _export(kinds, ["fp32"], args.profile, st.model_dir, adir, st.device.type)
        paths = discover(adir)
    artifacts = [from_file(p, st.config, st.sha, st.device, st.run_on) for p in paths]
    artifacts += [eager_artifact(st.model_dir, name.split("-")[1], st.device.type) for name in eager]
    return artifacts or f"no artifacts to test (looked in {adir})"


def bf16_reference_note(fp32_gemm: bool) -> str:
    return (
        f"bf16 references run their linear layers as fp32 GEMMs on the bf16 values, rounded once to bf16: this CPU "
        f"({cpu_capability()}) has no native bf16 (no AVX-512 BF16 or AMX), where ATen's own bf16 GEMM is ~25x "
        "slower; the same arithmetic (exact products, fp32 sums, one rounding), 99.99 % of outputs bit-identical to "
        "ATen's (models/eager.py). --aten-bf16-references runs ATen's own."
        if fp32_gemm
        else ""
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars for every reference model drown the suite's own
    try:
        st = _settings(args)
    except (ValueError, CheckpointError, ToleranceError, ProfileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if st.big_on_cpu and not args.cases:
        print(
            f"parity: full-size model on the CPU: default cases trimmed to {', '.join(st.cases)} and "
            f"references to golden-fp64, {', '.join(st.references)} (--cases all / --references all for everything)"
        )
    notes: list[str] = []
    artifacts = _select_artifacts(args, st, notes)
    if isinstance(artifacts, str):
        print(f"error: {artifacts}", file=sys.stderr)
        return EXIT_USAGE
    fp32_gemm = st.device.type == "cpu" and not native_bf16_cpu() and not args.aten_bf16_references
    note = bf16_reference_note(fp32_gemm)
    if note:
        print(f"parity: {note}")
    cfg = SuiteConfig(
        model_dir=st.model_dir,
        device=st.device,
        references=st.references,
        cases=st.cases,
        tolerances=st.tolerances,
        out_dir=args.results_dir / (args.name or _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")),
        localise=args.localise,
        seed=args.seed,
        max_tokens=args.max_tokens,
        replay=st.replay,
        progress=not args.no_progress,
        log=lambda msg: print(msg, file=sys.stderr),
        reference_cache=None if args.no_reference_cache else args.reference_cache or args.results_dir / CACHE,
        reference_memory_gib=args.reference_memory_gib,
        fp32_gemm_references=fp32_gemm,
    )
    print(
        f"parity: {len(artifacts)} artifact(s), cases {', '.join(st.cases) if st.replay is None else '(replay)'}, "
        f"references golden-fp64, {', '.join(st.references)}, on {st.device}"
    )
    res = run_suite(cfg, artifacts)
    res.notes.extend(notes + ([note] if note else []))
    write_reports(res, cfg)
    print(summary_table(res))
    verdict = "FAIL" if res.failed else "PASS"
    print(f"parity: {verdict} in {res.info.get('seconds')} s; report: {cfg.out_dir / 'report.md'}")
    return EXIT_FAILED if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
