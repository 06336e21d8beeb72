"""The suite: artifacts x cases x references -> metrics, verdicts, localisation, and the report files.

Batched artifacts run the batched cases, packed artifacts the packed ones (parity/cases.py): a packed case's items
are one-sample cases to the references (computed, cached, calibrated per item), the artifact runs them as one list
(`runner.run_packed`), and each item's rows are judged with the same rule as any case's (row case `<case>[i]`)."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import OneVisionEncoderConfig, load_config, weights_sha256
from models.metrics import Metrics, compare
from runtime.base import NotRunnableHere

from .artifacts import ArtifactUnderTest, eager_artifact
from .cases import (
    CaseContext,
    CaseInput,
    PackedCase,
    Skip,
    build_case,
    build_packed_case,
    is_packed_case,
    load_input,
    regroup,
)
from .localise import Localisation, Subject, localise, make_probe, packed_subject
from .reference_cache import ReferenceCache
from .references import GOLDEN, REFERENCES, ReferenceBank, ReferenceError, calibration_name
from .tolerances import Tolerances, Verdict

SUITE_VERSION = 1
SMALL_MODEL_PARAMS = 50_000_000  # below this, "auto" choices (localisation by rebuild, ...) assume cheap runs


@dataclass
class Row:
    artifact: str
    case: str  # case name
    case_key: str
    reference: str
    status: str  # pass | fail | skipped | error
    reason: str = ""
    metrics: Metrics | None = None
    verdict: Verdict | None = None
    inherent_artifact: tuple[float, float] | None = None
    inherent_reference: tuple[float, float] | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "case": self.case,
            "case_key": self.case_key,
            "reference": self.reference,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "inherent_artifact": list(self.inherent_artifact) if self.inherent_artifact else None,
            "inherent_reference": list(self.inherent_reference) if self.inherent_reference else None,
            "artifact_seconds": self.seconds,
        }


@dataclass
class SuiteResult:
    rows: list[Row] = field(default_factory=list)
    artifacts: list[ArtifactUnderTest] = field(default_factory=list)
    cases: dict[str, CaseInput] = field(default_factory=dict)  # key -> input (a packed case's items too)
    packed: dict[str, PackedCase] = field(default_factory=dict)  # key -> packed case
    # (artifact, packed case key) -> the item indices of each call the runtime made
    packed_calls: dict[tuple[str, str], list[list[int]]] = field(default_factory=dict)
    calibration: dict[str, dict[str, Metrics]] = field(default_factory=dict)  # "key|layers" -> ref -> vs golden
    localisations: list[Localisation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def failed(self) -> bool:
        bad_artifacts = any(a.error for a in self.artifacts)
        return bad_artifacts or any(r.status in ("fail", "error") for r in self.rows)

    def counts(self, artifact: str | None = None) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "error": 0, "skipped": 0}
        for r in self.rows:
            if artifact is None or r.artifact == artifact:
                out[r.status] = out.get(r.status, 0) + 1
        return out


@dataclass
class SuiteConfig:
    model_dir: Path
    device: torch.device
    references: list[str]  # shown rows besides the golden
    cases: list[str]
    tolerances: Tolerances
    out_dir: Path
    localise: str = "auto"  # auto | rebuild | off
    seed: int = 0
    max_tokens: int = 0  # 0: no limit; else cases with B*L (packed: N, all items) above it are skipped
    replay: list[CaseInput] | None = None  # --replay: run these saved inputs instead of generating cases
    reference_cache: Path | None = None  # references kept on disk between runs (parity/reference_cache.py)
    reference_memory_gib: float | None = None  # memory a reference computation may take (None: the device's default)
    # bf16/fp16 references run their linear layers as fp32 GEMMs (models.eager.fp32_gemm_linears): a CPU without
    # native bf16, where ATen's own bf16 GEMM is ~25x slower
    fp32_gemm_references: bool = False
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))


def count_params(model_dir: Path) -> int:
    c = load_config(model_dir)
    d, ff, n = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    return n * (4 * d * d + 2 * d * ff) + 3 * c.patch_size**2 * d


def _tqdm(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True)


Planned = CaseInput | PackedCase


def _inputs_for(
    art: ArtifactUnderTest,
    cfg: SuiteConfig,
    config: OneVisionEncoderConfig,
    built_before: dict[tuple[Any, ...], Planned | Skip] | None = None,
) -> list[Planned | tuple[str, Skip]]:
    """Every case of the artifact's kind (batched or packed) fitted to it and the checkpoint (or the replayed inputs
    that fit it). `built_before`: cases already built for another artifact of the same profile (rendering a case's
    pixels takes a moment: a codec selection renders a whole clip), reused."""
    ctx = CaseContext.for_config(config, art.profile, art.min_tokens, cfg.seed)
    built_before = {} if built_before is None else built_before
    out: list[Planned | tuple[str, Skip]] = []
    if cfg.replay is not None:
        for case in regroup(cfg.replay):
            if isinstance(case, PackedCase) != art.packed:
                continue
            if isinstance(case, PackedCase):
                skips = [f"{item.name}: {s.reason}" for item in case.items if (s := ctx.outside(*item.shape))]
                out.append((case.name, Skip("; ".join(skips))) if skips else case)
            else:
                skip = ctx.outside(*case.shape)
                out.append((case.name, skip) if skip else case)
        return out
    kind = "packed" if art.packed else "batched"
    names = [name for name in cfg.cases if is_packed_case(name) == art.packed]
    if not names:
        asked = ", ".join(cfg.cases)
        return [(f"({kind} cases)", Skip(f"no {kind} case among the cases asked for ({asked}): a {kind} artifact "
                                         f"runs the {kind} cases"))]  # fmt: skip
    for name in names:
        key = (name, ctx.profile, ctx.min_tokens, ctx.base_seed, ctx.patch, ctx.timeline)
        if key not in built_before:
            built_before[key] = build_packed_case(name, ctx) if art.packed else build_case(name, ctx)
        built = built_before[key]
        if isinstance(built, Skip):
            out.append((name, built))
        elif cfg.max_tokens and built.tokens > cfg.max_tokens:
            what = "N (all items)" if art.packed else "B*L"
            out.append((name, Skip(f"over the token budget ({what} = {built.tokens} > --max-tokens {cfg.max_tokens})")))
        else:
            out.append(built)
    return out


def run_suite(cfg: SuiteConfig, artifacts: list[ArtifactUnderTest]) -> SuiteResult:
    """Run everything and return the result; nothing is written (the CLI writes it: report.write_reports)."""
    started = time.perf_counter()
    _unique_names(artifacts)
    res = SuiteResult(artifacts=artifacts, out_dir=cfg.out_dir)
    config = load_config(cfg.model_dir)
    sha = weights_sha256(cfg.model_dir)
    res.info = _environment(cfg, config.to_dict(), sha)
    plan = _plan_inputs(artifacts, cfg, config, res)
    bank = _compute_references(artifacts, plan, cfg, config, sha, res)
    _run_artifacts(artifacts, plan, cfg, bank, res)
    res.info["seconds"] = round(time.perf_counter() - started, 1)
    return res


def _unique_names(artifacts: list[ArtifactUnderTest]) -> None:
    """Names key everything: make them unique (the same file name in two folders gets #2, #3, ...)."""
    seen: dict[str, int] = {}
    for art in artifacts:
        seen[art.name] = seen.get(art.name, 0) + 1
        if seen[art.name] > 1:
            art.name = f"{art.name}#{seen[art.name]}"


def _items(case: Planned) -> list[CaseInput]:
    """The one-sample (packed) or batched inputs the references are computed for."""
    return case.items if isinstance(case, PackedCase) else [case]


def _plan_inputs(
    artifacts: list[ArtifactUnderTest], cfg: SuiteConfig, config: OneVisionEncoderConfig, res: SuiteResult
) -> dict[str, list[Planned]]:
    """Inputs per artifact (its skipped cases recorded as rows now; write_reports saves the inputs for --replay)."""
    plan: dict[str, list[Planned]] = {}
    built: dict[tuple[Any, ...], Planned | Skip] = {}
    for art in artifacts:
        plan[art.name] = []
        if art.error or art.skip_reason:
            continue
        for item in _inputs_for(art, cfg, config, built):
            if isinstance(item, tuple):
                name, skip = item
                res.rows.append(Row(art.name, name, "", "*", "skipped", skip.reason))
                continue
            if isinstance(item, PackedCase):
                item = res.packed.setdefault(item.key, item)
                for one in item.items:
                    res.cases.setdefault(one.key, one)
            else:
                item = res.cases.setdefault(item.key, item)
            plan[art.name].append(item)
    return plan


def _compute_references(
    artifacts: list[ArtifactUnderTest],
    plan: dict[str, list[Planned]],
    cfg: SuiteConfig,
    config: OneVisionEncoderConfig,
    sha: str,
    res: SuiteResult,
) -> ReferenceBank:
    """The golden, each artifact precision's calibration and the shown references, one model at a time (read back
    from the cache when there), then every reference's own distance to the golden."""
    gemm = cfg.fp32_gemm_references
    cache = ReferenceCache(cfg.reference_cache, sha, cfg.device, cfg.model_dir, gemm) if cfg.reference_cache else None
    budget = int(cfg.reference_memory_gib * 2**30) if cfg.reference_memory_gib else None
    bank = ReferenceBank(cfg.model_dir, cfg.device, config.num_hidden_layers, cache, budget, gemm)
    precisions = sorted({a.precision for a in artifacts if plan.get(a.name)})
    needed = [GOLDEN, *dict.fromkeys([calibration_name(p) for p in precisions] + list(cfg.references))]
    jobs = list(
        {
            (c.key, a.num_layers): (c, a.num_layers)
            for a in artifacts
            for case in plan.get(a.name, [])
            for c in _items(case)
        }.values()
    )
    if jobs:
        bar = _tqdm(len(jobs) * len(needed), "references", cfg.progress)

        def tick(msg: str) -> None:
            bar.set_postfix_str(msg)
            bar.update(1)

        try:
            bank.compute(jobs, needed, progress=tick)
        except ReferenceError as exc:
            res.notes.append(f"reference error: {exc}")
            cfg.log(f"error: {exc}")
            needed = [n for n in needed if not REFERENCES[n].remote]
            cfg.references = [n for n in cfg.references if not REFERENCES[n].remote]
            bank.compute(jobs, needed)
        bar.close()
    res.info["reference_seconds"] = {k: round(v, 2) for k, v in bank.seconds.items()}
    res.info["reference_cache"] = {"folder": str(cfg.reference_cache), "hits": cache.hits} if cache else None
    if bank.remote_class:
        res.info["remote_class"] = bank.remote_class
        res.info["remote_attention"] = bank.remote_attention
    _calibrate(jobs, needed, bank, res)
    return bank


def _calibrate(jobs: list[tuple[CaseInput, int]], names: list[str], bank: ReferenceBank, res: SuiteResult) -> None:
    """Every reference's own distance to the golden, per case (the report's calibration table)."""
    for case, layers in jobs:
        golden = bank.get(case, layers, GOLDEN)
        if golden is None:
            continue
        cal: dict[str, Metrics] = {}
        for name in names:
            out = bank.get(case, layers, name)
            if out is not None:
                cal[name] = compare(out, golden)
        res.calibration[f"{case.key}|{layers}"] = cal


def _load_or_skip(art: ArtifactUnderTest, res: SuiteResult) -> bool:
    """Load the artifact now (so a load error is one line, not one per case); False when it cannot run.

    A machine without what the artifact needs (NotRunnableHere: no CUDA, a backend package or kernel it does not
    have) skips it, saying why. Any other load error is a failure: the sha256 matched its manifest, so a backend
    that is installed and still cannot load it (a CUDA provider that fails, a package it cannot parse) is broken."""
    try:
        art.runner  # noqa: B018
    except NotRunnableHere as exc:
        art.skip_reason = f"cannot run here: {exc}"
        res.rows = [r for r in res.rows if r.artifact != art.name]  # its case skips say nothing now
        return False
    except Exception as exc:
        art.error = f"does not load: {type(exc).__name__}: {exc}"
        return False
    return True


@dataclass
class Failure:
    """A failing row, its (one-sample or batched) input, the artifact's output for it, and where that came from:
    a packed case and the item's index in it (localisation re-runs the call the item was in)."""

    row: Row
    case: CaseInput
    output: torch.Tensor
    packed: PackedCase | None = None
    index: int = 0


def _run_artifacts(
    artifacts: list[ArtifactUnderTest],
    plan: dict[str, list[Planned]],
    cfg: SuiteConfig,
    bank: ReferenceBank,
    res: SuiteResult,
) -> None:
    """Each artifact over its cases, judged against every reference; its worst failure localised."""
    small = count_params(cfg.model_dir) < SMALL_MODEL_PARAMS
    bar = _tqdm(sum(len(v) for v in plan.values()), "artifacts", cfg.progress)
    for art in artifacts:
        if art.error or art.skip_reason or not plan[art.name]:
            continue
        if not _load_or_skip(art, res):
            bar.update(len(plan[art.name]))
            continue
        failures: list[Failure] = []
        for case in plan[art.name]:
            bar.set_postfix_str(f"{art.name} {case.name}")
            if isinstance(case, PackedCase):
                failures += _run_packed_case(art, case, cfg, bank, res)
            else:
                rows, output = _run_case(art, case, cfg, bank)
                res.rows.extend(rows)
                bad = [r for r in rows if r.status == "fail"]
                if bad and output is not None:
                    failures.append(Failure(_first_failing(bad), case, output))
            bar.update(1)
        if failures:
            res.localisations.append(_localise(art, failures, cfg, bank, small))
        art.close()
    bar.close()


def _first_failing(bad: list[Row]) -> Row:
    """The row to localise against: the golden's when it fails, else the first failing reference's."""
    return min(bad, key=lambda r: 0 if r.reference == GOLDEN else 1)


def _missing_reference(art: ArtifactUnderTest, case: CaseInput, bank: ReferenceBank) -> Row | None:
    """An error row when the golden or the artifact precision's calibration could not be computed for this input
    (e.g. out of memory): the case cannot be judged."""
    golden = bank.get(case, art.num_layers, GOLDEN)
    own = bank.get(case, art.num_layers, calibration_name(art.precision))
    if golden is not None and own is not None:
        return None
    name = GOLDEN if golden is None else calibration_name(art.precision)
    why = bank.unsupported.get((case.key, name), "not computed")
    return Row(art.name, case.name, case.key, "*", "error", f"reference {name}: {why}")


def _run_case(
    art: ArtifactUnderTest, case: CaseInput, cfg: SuiteConfig, bank: ReferenceBank
) -> tuple[list[Row], torch.Tensor | None]:
    missing = _missing_reference(art, case, bank)
    if missing is not None:
        return [missing], None
    start = time.perf_counter()
    try:
        output = art.run(case.pixel_values, case.patch_positions)
    except Exception as exc:  # the runtime refused or the backend crashed: an error row for this case
        return [Row(art.name, case.name, case.key, "*", "error", f"{type(exc).__name__}: {exc}")], None
    return _judge_output(art, case, output, time.perf_counter() - start, cfg, bank), output


def _run_packed_case(
    art: ArtifactUnderTest, case: PackedCase, cfg: SuiteConfig, bank: ReferenceBank, res: SuiteResult
) -> list[Failure]:
    """The items run as one list (`run_packed`); each item's rows judged against its own references. An item
    without its golden or calibration is an error row of its own; the call runs the whole list regardless (the
    other items' rows are still judged). A refused or crashed call is one error row for the packed case."""
    pairs = [(item.pixel_values, item.patch_positions) for item in case.items]
    start = time.perf_counter()
    try:
        outputs = art.run_packed(pairs)
        res.packed_calls[(art.name, case.key)] = art.packed_calls(pairs)
    except Exception as exc:
        res.rows.append(Row(art.name, case.name, case.key, "*", "error", f"{type(exc).__name__}: {exc}"))
        return []
    seconds = time.perf_counter() - start  # the whole list's: every item row carries the call's time
    failures = []
    for index, (item, output) in enumerate(zip(case.items, outputs, strict=True)):
        missing = _missing_reference(art, item, bank)
        if missing is not None:
            res.rows.append(missing)
            continue
        rows = _judge_output(art, item, output, seconds, cfg, bank)
        res.rows.extend(rows)
        bad = [r for r in rows if r.status == "fail"]
        if bad:
            failures.append(Failure(_first_failing(bad), item, output, case, index))
    return failures


def _judge_output(
    art: ArtifactUnderTest, case: CaseInput, output: torch.Tensor, seconds: float, cfg: SuiteConfig, bank: ReferenceBank
) -> list[Row]:
    """The artifact's output for one input judged against every reference (the golden and the calibration exist)."""
    golden = bank.get(case, art.num_layers, GOLDEN)
    own = bank.get(case, art.num_layers, calibration_name(art.precision))
    assert golden is not None and own is not None
    cal = compare(own, golden)
    inherent_a = (cal.rel_l2, cal.max_angle)
    rows = []
    for name in [GOLDEN, *cfg.references]:
        spec = REFERENCES[name]
        row = Row(art.name, case.name, case.key, name, "pass", seconds=seconds, inherent_artifact=inherent_a)
        ref = bank.get(case, art.num_layers, name)
        if ref is None:
            row.status, row.reason = "skipped", bank.unsupported.get((case.key, name), "reference not computed")
            rows.append(row)
            continue
        try:
            row.metrics = compare(output, ref)
        except ValueError as exc:
            row.status, row.reason = "error", str(exc)
            rows.append(row)
            continue
        if row.metrics.ref_nonfinite:
            row.status, row.reason = "error", f"the reference has {row.metrics.ref_nonfinite} NaN/Inf values"
            rows.append(row)
            continue
        ref_cal = (0.0, 0.0)
        if name != GOLDEN:
            ref_metrics = compare(ref, golden)
            ref_cal = (ref_metrics.rel_l2, ref_metrics.max_angle)
            broken = _broken_reference(ref_metrics, spec.precision, case, art.num_layers, cfg, bank)
            if broken:  # its own error would widen the bound until anything passes: not a yardstick
                row.status, row.reason = "error", f"reference {name} is itself off the golden: {broken}"
                rows.append(row)
                continue
        row.inherent_reference = ref_cal
        try:
            row.verdict = cfg.tolerances.judge(row.metrics, art.precision, spec.precision, inherent_a, ref_cal)
        except ValueError as exc:
            row.status, row.reason = "error", str(exc)
            rows.append(row)
            continue
        if not row.verdict.passed:
            row.status, row.reason = "fail", row.verdict.reason
        rows.append(row)
    return rows


def _broken_reference(
    ref_metrics: Metrics, precision: str, case: CaseInput, layers: int, cfg: SuiteConfig, bank: ReferenceBank
) -> str:
    """Why a reference fails the rule against the float64 golden at its own precision ('' when it passes).

    A reference is a yardstick only while it is itself as close to the golden as eager sdpa at its precision allows
    (the "<precision>/fp64" rule): a reference's own error enters every bound against it (max(e_A, e_R)), so a broken
    one (say, remote code whose RoPE buffers were never initialised) would let any artifact pass against it.
    """
    calibration = bank.get(case, layers, calibration_name(precision))
    if calibration is None:
        return ""
    golden = bank.get(case, layers, GOLDEN)
    assert golden is not None
    own = compare(calibration, golden)
    verdict = cfg.tolerances.judge(ref_metrics, precision, "fp64", (own.rel_l2, own.max_angle), (0.0, 0.0))
    return "" if verdict.passed else verdict.reason


def _subject(art: ArtifactUnderTest, failure: Failure) -> Subject:
    """What the probe runs: the failing case's own inputs, or, for a packed item, the call it was in."""
    if failure.packed is None:
        return Subject((failure.case.pixel_values.to(art.input_dtype), failure.case.patch_positions))
    return packed_subject(art, failure.packed, failure.index)


def _localise(
    art: ArtifactUnderTest,
    failures: list[Failure],
    cfg: SuiteConfig,
    bank: ReferenceBank,
    small: bool,
) -> Localisation:
    """Localise the artifact's worst failing case (one per artifact: the cheapest useful answer)."""
    failure = max(failures, key=lambda f: f.row.verdict.ratio if f.row.verdict else 0.0)
    row, case, output = failure.row, failure.case, failure.output
    probe = make_probe(art, cfg.localise, cfg.model_dir, small)
    if isinstance(probe, str):
        return Localisation(art.name, case.key, row.reference, "none", None, None, probe)
    cfg.log(f"localising {art.name} on {case.key} against {row.reference} ({probe.method})")
    try:
        subject = _subject(art, failure)
        return localise(art, case, row.reference, output, bank, cfg.tolerances, probe, cfg.log, subject)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Localisation(
            art.name, case.key, row.reference, probe.method, None, None, f"localisation failed: {detail}"
        )
    finally:
        probe.close()


def _environment(cfg: SuiteConfig, config: dict[str, Any], sha: str) -> dict[str, Any]:
    device = cfg.device
    if device.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        where = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "suite_version": SUITE_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "device": where,
        "torch": torch.__version__,
        "float32": "exact: no TF32 in any fp32 computation of the suite (models.tf32.exact_float32)",
        "python": platform.python_version(),
        "model_dir": str(cfg.model_dir),
        "weights_sha256": sha,
        "model": {k: config.get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads")},
        "synthetic": config.get("synthetic"),
        "tolerances": {"path": str(cfg.tolerances.path), "version": cfg.tolerances.version},
        "references": [GOLDEN, *cfg.references],
        "cases": list(cfg.cases) if cfg.replay is None else sorted({c.name for c in regroup(cfg.replay)}),
        "replay": cfg.replay is not None,
        "seed": cfg.seed,
        "localise": cfg.localise,
    }


def replay_inputs(folder: Path) -> tuple[list[CaseInput], dict[str, Any]]:
    """The saved inputs of an earlier run (folder/inputs/*.safetensors) and its report.json (if any)."""
    inputs = sorted((folder / "inputs").glob("*.safetensors"))
    if not inputs:
        raise FileNotFoundError(f"{folder}: no inputs/*.safetensors to replay (is it a parity results folder?)")
    report = folder / "report.json"
    data = json.loads(report.read_text()) if report.is_file() else {}
    return [load_input(p) for p in inputs], data


__all__ = ["Row", "SuiteConfig", "SuiteResult", "eager_artifact", "replay_inputs", "run_suite"]
