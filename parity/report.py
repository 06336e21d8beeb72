"""report.json (everything, machine-readable), report.md (the same as tables) and the terminal summary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .cases import save_input
from .references import GOLDEN, REFERENCES
from .suite import SuiteConfig, SuiteResult


def _g(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0:
        return "0"
    if isinstance(x, float) and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _cos(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"{x:.6f}" if x > 0.99 else f"{x:.4f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def artifact_status(res: SuiteResult, name: str) -> str:
    art = next(a for a in res.artifacts if a.name == name)
    if art.error:
        return "ERROR"
    if art.skip_reason:
        return "skipped"
    counts = res.counts(name)
    if counts["fail"] or counts["error"]:
        return "FAIL"
    if counts["pass"]:
        return "PASS"
    return "skipped"


def k_golden(res: SuiteResult, name: str) -> tuple[float, float] | None:
    """max over cases of rel_l2(A, G) / e_A and angle(A, G) / theta_A: "within k x of eager's inherent error"."""
    ks = [
        (r.metrics.rel_l2 / r.inherent_artifact[0], r.metrics.max_angle / r.inherent_artifact[1])
        for r in res.rows
        if r.artifact == name
        and r.reference == GOLDEN
        and r.metrics
        and r.inherent_artifact
        and r.inherent_artifact[0] > 0
        and r.inherent_artifact[1] > 0
    ]
    if not ks:
        return None
    return max(k[0] for k in ks), max(k[1] for k in ks)


def _k_text(k: tuple[float, float] | None) -> str:
    return f"{k[0]:.2f} / {k[1]:.2f}" if k else "—"


def worst_ratio(res: SuiteResult, name: str) -> float | None:
    ratios = [r.verdict.ratio for r in res.rows if r.artifact == name and r.verdict and math.isfinite(r.verdict.ratio)]
    return max(ratios) if ratios else None


def to_json(res: SuiteResult, cfg: SuiteConfig) -> dict[str, Any]:
    tol = cfg.tolerances
    return {
        **res.info,
        "status": "fail" if res.failed else "pass",
        "tolerances": {"path": str(tol.path), "version": tol.version, "rules": tol.raw.get("rules", {})},
        "reference_labels": {n: REFERENCES[n].label for n in res.info.get("references", [])},
        "notes": res.notes,
        "artifacts": [
            {
                **a.describe(),
                "status": artifact_status(res, a.name),
                "worst_ratio": worst_ratio(res, a.name),
                "k_vs_golden": k_golden(res, a.name),
            }
            for a in res.artifacts
        ],
        "cases": [{**c.describe(), "inputs_file": f"inputs/{c.file_stem}.safetensors"} for c in res.cases.values()],
        "packed_cases": [
            {
                **pc.describe(),
                "calls": {art: calls for (art, key), calls in res.packed_calls.items() if key == pc.key},
            }
            for pc in res.packed.values()
        ],
        "calibration": {key: {ref: m.to_dict() for ref, m in refs.items()} for key, refs in res.calibration.items()},
        "results": [r.to_dict() for r in res.rows],
        "localisation": [loc.to_dict() for loc in res.localisations],
    }


def to_markdown(res: SuiteResult, cfg: SuiteConfig) -> str:
    """report.md: the run, the pass rule, then one section a table (empty sections left out)."""
    sections = (
        _header(res, cfg),
        _pass_rule(),
        _summary(res),
        _calibration(res),
        _results(res),
        _failures(res),
        _skipped(res),
        _localisation(res),
        _packed(res),
        _inputs(res),
    )
    return "\n".join(line for section in sections for line in section) + "\n"


def _header(res: SuiteResult, cfg: SuiteConfig) -> list[str]:
    info = res.info
    tol = cfg.tolerances
    model = info.get("model", {})
    synthetic = info.get("synthetic")
    out = [
        "# Parity report",
        "",
        f"- **status: {'FAIL' if res.failed else 'PASS'}**, {info.get('seconds', '?')} s",
        f"- device: {info['device']}; torch {info['torch']}"
        + (f"; float32 {info['float32']}" if info.get("float32") else ""),
        f"- model: `{info['model_dir']}` (hidden {model.get('hidden_size')}, {model.get('num_hidden_layers')} layers"
        + (f", synthetic {synthetic.get('preset')} seed {synthetic.get('seed')}" if synthetic else "")
        + f"), weights sha256 `{info['weights_sha256'][:16]}…`",
        f"- tolerances: `{tol.path.name}` version {tol.version}; references: "
        + ", ".join(f"`{r}`" for r in info["references"]),
        f"- cases: {', '.join(info['cases'])}" + (" (replayed)" if info.get("replay") else ""),
    ]
    if info.get("remote_class"):
        out.append(
            f"- remote-code reference (trust_remote_code): `{info['remote_class']}` from the checkpoint folder, "
            f"attention implementation {info.get('remote_attention')}"
        )
    return out + [f"- note: {n}" for n in res.notes]


def _pass_rule() -> list[str]:
    return [
        "",
        "Pass rule (per row; A = artifact at precision pa, R = reference at precision pr, G = float64 golden):",
        "`rel_l2(A,R) <= k_rel·max(e_A, e_R) + floor_rel` and `angle(A,R) <= k_ang·max(θ_A, θ_R) + floor_ang` and no "
        "NaN/Inf, where e_A = rel_l2(eager sdpa at pa, G), e_R = rel_l2(R, G) and θ the worst per-token angle "
        "likewise. `ratio` = the larger of the two measured/bound quotients (> 1 fails). `k vs golden` = the largest "
        "rel_l2(A,G)/e_A and angle(A,G)/θ_A over the cases: how many times eager's own error at the artifact's "
        "precision the artifact is from exact arithmetic (tolerances.json allows e.g. 4 for fp32, 2 for bf16).",
        "",
    ]


SUMMARY_COLUMNS = ["artifact", "kind", "precision", "profile", "device", "pass", "fail", "skipped"]
SUMMARY_COLUMNS += ["k vs golden (rel / angle)", "worst ratio", "result", "note"]


def _summary(res: SuiteResult) -> list[str]:
    rows = []
    for a in res.artifacts:
        c = res.counts(a.name)
        note = a.error or a.skip_reason or "; ".join(a.warnings)
        profile = a.profile.name if a.profile else "—"
        counts = [str(c["pass"]), str(c["fail"] + c["error"]), str(c["skipped"])]
        quality = [_k_text(k_golden(res, a.name)), _g(worst_ratio(res, a.name))]
        rows.append([f"`{a.name}`", a.kind, a.precision, profile, a.device, *counts, *quality])
        rows[-1] += [f"**{artifact_status(res, a.name)}**", note]
    return ["## Summary", "", _table(SUMMARY_COLUMNS, rows)]


def _calibration(res: SuiteResult) -> list[str]:
    rows = []
    for key, refs in res.calibration.items():
        case_key, layers = key.rsplit("|", 1)
        case = res.cases.get(case_key)
        name, shape = (case.name, case.shape_text) if case else (case_key, "")
        for ref, m in refs.items():
            if ref != GOLDEN:
                errors = [_g(m.rel_l2), _g(m.max_angle), _cos(m.min_cos), _g(m.max_abs), _g(m.mean_abs)]
                rows.append([name, shape, layers, f"`{ref}`", *errors])
    header = ["case", "B×T×H×W", "layers", "reference", "rel L2", "max angle", "min cos", "max abs", "mean abs"]
    return ["", "## Calibration: each reference's own distance to the float64 golden", "", _table(header, rows)]


RESULT_COLUMNS = ["artifact", "case", "B×T×H×W", "reference", "max abs", "mean abs", "p99.9 abs", "rel L2", "bound"]
RESULT_COLUMNS += ["min cos", "NaN/Inf", "ratio", "result"]


def _results(res: SuiteResult) -> list[str]:
    rows = []
    for r in res.rows:
        if r.status == "skipped" and r.reference == "*":
            continue
        shown = res.cases.get(r.case_key) or res.packed.get(r.case_key)
        rm, v = r.metrics, r.verdict
        measured = [_g(rm.max_abs), _g(rm.mean_abs), _g(rm.p999_abs), _g(rm.rel_l2)] if rm else ["—"] * 4
        bound = _g(v.bound_rel_l2) if v else "—"
        after = [_cos(rm.min_cos), str(rm.nonfinite)] if rm else ["—", "—"]
        result = f"**{r.status.upper()}**" if r.status in ("fail", "error") else r.status
        row = [f"`{r.artifact}`", r.case, shown.shape_text if shown else "", f"`{r.reference}`", *measured, bound]
        rows.append([*row, *after, _g(v.ratio) if v else "—", result])
    return ["", "## Results (artifact × case × reference)", "", _table(RESULT_COLUMNS, rows)]


def _failures(res: SuiteResult) -> list[str]:
    failing = [r for r in res.rows if r.status in ("fail", "error")]
    if not failing:
        return []
    return ["", "### Failures", "", *(f"- `{r.artifact}` {r.case} vs `{r.reference}`: {r.reason}" for r in failing)]


def _skipped(res: SuiteResult) -> list[str]:
    skipped = [r for r in res.rows if r.status == "skipped"]
    if not skipped:
        return []
    rows = [
        [f"`{r.artifact}`", r.case, "—" if r.reference == "*" else r.reference, f"skipped: {r.reason}"] for r in skipped
    ]
    return ["", "## Skipped", "", _table(["artifact", "case", "reference", "reason"], rows)]


LAYER_COLUMNS = ["hidden state", "after", "rel L2", "bound", "max angle", "bound", "ratio", "result"]


def _localisation(res: SuiteResult) -> list[str]:
    if not res.localisations:
        return []
    out = ["", "## Localisation", ""]
    for loc in res.localisations:
        out += [f"### `{loc.artifact}` — {loc.case} vs `{loc.reference}`", "", f"**{loc.message}**", ""]
        out.append(f"method: {loc.method}")
        if loc.probe_consistency is not None:
            out.append(f"(probe reproduces the artifact's output to rel L2 {_g(loc.probe_consistency)})")
        if loc.layers:
            rows = [_layer_row(row) for row in loc.layers]
            out += ["", _table(LAYER_COLUMNS, rows)]
        out.append("")
    return out


def _layer_row(row: Any) -> list[str]:
    errors = [_g(row.rel_l2), _g(row.bound_rel_l2), _g(row.max_angle), _g(row.bound_angle), _g(row.ratio)]
    return [str(row.index), row.name, *errors, "pass" if row.passed else "**FAIL**"]


def _packed(res: SuiteResult) -> list[str]:
    if not res.packed:
        return []
    rows = []
    for pc in res.packed.values():
        items = ", ".join(f"[{i}] {item.shape_text}" for i, item in enumerate(pc.items))
        calls = [
            f"`{art}`: " + " ".join("(" + ",".join(map(str, call)) + ")" for call in plan)
            for (art, key), plan in res.packed_calls.items()
            if key == pc.key
        ]
        what = pc.title + (f" ({pc.note})" if pc.note else "")
        rows.append([pc.name, what, str(pc.tokens), items, "<br>".join(calls) or "—"])
    return [
        "",
        "## Packed cases",
        "",
        "Each packed case is one list of items run by a packed artifact (`runner.run_packed`); item i's rows are "
        "the case `<case>[i]` above, judged against that item's own eager references (computed for it alone). "
        "`calls`: the item indices of each call the runtime made (its plan within the profile's budget).",
        "",
        _table(["case", "what", "tokens", "items (B×T×H×W)", "calls"], rows),
    ]


def _inputs(res: SuiteResult) -> list[str]:
    rows = [
        [c.name, c.shape_text, str(c.tokens), str(c.seed), c.title + (f" ({c.note})" if c.note else ""), c.file_stem]
        for c in res.cases.values()
    ]
    rows = [[*row[:-1], f"`inputs/{row[-1]}.safetensors`"] for row in rows]
    return ["", "## Inputs", "", _table(["case", "B×T×H×W", "tokens", "seed", "what", "file"], rows)]


def summary_table(res: SuiteResult) -> str:
    """The short terminal summary: one line per artifact."""
    header = ["artifact", "precision", "profile", "pass", "fail", "skip", "k vs golden", "worst", "result"]
    rows = []
    for a in res.artifacts:
        c = res.counts(a.name)
        rows.append(
            [
                a.name,
                a.precision,
                a.profile.name if a.profile else "-",
                str(c["pass"]),
                str(c["fail"] + c["error"]),
                str(c["skipped"]),
                _k_text(k_golden(res, a.name)),
                _g(worst_ratio(res, a.name)),
                artifact_status(res, a.name),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for a in res.artifacts:
        if a.error or a.skip_reason:
            lines.append(f"  {a.name}: {'error: ' + a.error if a.error else 'skipped: ' + str(a.skip_reason)}")
        for w in a.warnings:
            lines.append(f"  {a.name}: warning: {w}")
    for r in res.rows:
        if r.status in ("fail", "error"):
            lines.append(f"  {r.status.upper()} {r.artifact} {r.case} vs {r.reference}: {r.reason}")
    for loc in res.localisations:
        lines.append(f"  localisation {loc.artifact} ({loc.case} vs {loc.reference}): {loc.message}")
    return "\n".join(lines)


def write_reports(res: SuiteResult, cfg: SuiteConfig) -> tuple[Path, Path]:
    """Write report.json, report.md and the inputs (inputs/<case>.safetensors, for --replay) under cfg.out_dir."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    for case in res.cases.values():
        save_input(case, cfg.out_dir / "inputs")
    jpath = cfg.out_dir / "report.json"
    mpath = cfg.out_dir / "report.md"
    jpath.write_text(json.dumps(to_json(res, cfg), indent=2) + "\n")
    mpath.write_text(to_markdown(res, cfg))
    return jpath, mpath
