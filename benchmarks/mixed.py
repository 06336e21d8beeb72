"""`python -m benchmarks.mixed`: packed batches against one item at a time and padded-to-the-largest batches, on
seeded mixed workloads (benchmarks/mixes.py), for every kind, in one run.

    python -m benchmarks.mixed --artifacts-dir DIR [--workloads mix-cpu,small] [--kinds pt2,aoti] [--device cuda]
        [--precision bf16] [--rounds 3] [--warmup 1] [--out results/mixed] [--name NAME]

Per kind it takes from DIR (searched recursively, by manifest: same weights as --model, the precision asked, runs on
the device) the packed artifacts whose profile takes every item of the workload (one per packed attention: mask and
padded are both timed when both are there) and a batched artifact whose profile takes every item (one at a time, B = 1,
and padded-to-the-largest batches; without one, one at a time is the packed artifact called one item a call and the
padded strategy is left out, saying so). Each (workload, kind) runs in its own process (`benchmarks.mixed_worker`):
every strategy prepared first, then timed round by round in one process so load from other jobs hits all alike.
Reported per strategy: items/s and tokens/s (the items' own tokens) from the median pass, p50/p99 per-call latency,
× one at a time (median of the per-round ratios), the planner's work estimate against one at a time, and how far
each packed item's output is from its one-at-a-time output. Results: <out>/<name>/mixed.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.backends import BACKENDS
from contract.manifest import KINDS, Manifest, read_manifest
from contract.profiles import PackedProfile, ShapeProfile, profile_from_dict
from models import load_config, weights_sha256
from models.synthetic import ensure_default

from .mixed_worker import ONE, PADDED, loadavg
from .mixes import CPU_MIXES, GPU_MIXES, MIXES, Item

QUICK_MIXES = ["tiny"]
AIM_MIX, AIM_SMALL = 0.95, 1.15  # the CPU aims: no kind below 0.95x on the mix, the best >= 1.15x on small


def cpu_model() -> str:
    """lscpu's model name (/proc/cpuinfo's where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device: str) -> str:
    text = f"{os.cpu_count()} CPU cores ({cpu_model()}), Python {platform.python_version()}"
    if device.startswith("cuda"):
        import torch

        text += f", GPU {torch.cuda.get_device_name()}"
    return text


@dataclass(frozen=True)
class Found:
    path: Path
    manifest: Manifest

    @property
    def packed(self) -> bool:
        return bool(self.manifest.profile.get("packed"))

    @property
    def attention(self) -> str:
        return str(self.manifest.extra.get("packed_attention", "mask"))

    def takes(self, shapes: list[Item], patch: int) -> bool:
        """Its profile takes every item (packed: each item in a call; batched: each item alone and padded batches of
        them, whose T/H/W are some items' own)."""
        profile = profile_from_dict(self.manifest.profile)
        if profile.patch != patch:
            return False
        if isinstance(profile, PackedProfile):
            return all(not profile.item_violations(s.frames, s.height, s.width) for s in shapes)
        assert isinstance(profile, ShapeProfile)
        return all(not profile.violations(1, s.frames, s.height, s.width) for s in shapes)


def find(directory: Path, device: str, precision: str, weights: str) -> list[Found]:
    """Artifacts under `directory` (recursively) of these weights and precision that run on `device`."""
    found = []
    for mpath in sorted(directory.rglob("*.json")) if directory.is_dir() else []:
        try:
            manifest = read_manifest(mpath.with_suffix(""), verify=False)
        except (ValueError, OSError):
            continue
        described = BACKENDS.get(manifest.kind)
        if manifest.kind not in KINDS or described is None or manifest.precision != precision:
            continue
        allowed = described.devices if described.devices is not None else (manifest.device.split(":")[0],)
        if device.split(":")[0] not in allowed or manifest.source.get("weights_sha256") != weights:
            continue
        found.append(Found(mpath.with_suffix(""), manifest))
    return found


def choose(found: list[Found], kind: str, shapes: list[Item], patch: int) -> tuple[Found | None, list[Found]]:
    """(the batched artifact, the packed ones: the first of each attention) of `kind` that take every item."""
    mine = [f for f in found if f.manifest.kind == kind and f.takes(shapes, patch)]
    batched = next((f for f in mine if not f.packed), None)
    packed: dict[str, Found] = {}
    for f in mine:
        if f.packed:
            packed.setdefault(f.attention, f)
    return batched, [packed[a] for a in sorted(packed)]


def run_worker(
    kind: str, mix: str, batched: Found | None, packed: list[Found], args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.mixed_worker", "--kind", kind, "--model", str(args.model), "--mix", mix,
           "--device", args.device, "--rounds", str(args.rounds), "--warmup", str(args.warmup),
           "--seed", str(args.seed)]  # fmt: skip
    if batched is not None:
        cmd += ["--batched", str(batched.path)]
    for f in packed:
        cmd += ["--packed", str(f.path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.PIPE, text=True,
                          env=env, check=False)  # fmt: skip
    if proc.returncode != 0:
        last = ((proc.stderr or "").strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"kind": kind, "mix": mix, "error": last[:300]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def quick_artifacts(model: Path, out: Path) -> Path:
    """--quick without artifacts: tiny pt2 artifacts, batched (test-small) and packed (packed-test-small, padded
    and mask attention)."""
    from contract.profiles import resolve_profile
    from export import BuildRequest, build

    for profile, attention in (("test-small", None), ("packed-test-small", "padded"), ("packed-test-small", "mask")):
        folder = out / (attention or "batched")
        options: dict[str, Any] = {"quiet": True, **({"packed_attention": attention} if attention else {})}
        build("pt2", BuildRequest(model, "fp32", [resolve_profile(profile)], folder, options=options))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mixed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="checkpoint (default: synthetic full, or tiny with --quick)")
    p.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"), help="searched recursively")
    p.add_argument("--kinds", help="comma-separated kinds (default: every kind with a packed artifact found)")
    p.add_argument("--workloads", help=f"comma-separated, from {sorted(MIXES)} (default: cpu {','.join(CPU_MIXES)}; "
                   f"cuda {','.join(GPU_MIXES)})")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (each runs every strategy's whole pass)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny checkpoint, the tiny mix, 2 rounds (CI)")
    p.add_argument("--out", type=Path, default=Path("results/mixed"))
    p.add_argument("--name", help="results sub-folder (default: cpu|cuda[-quick])")
    p.add_argument("--verbose", action="store_true", help="show the workers' progress lines")
    return p


def rows_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (workload, kind, strategy), errors as their own row."""
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"mix": r["mix"], "kind": r["kind"], "error": r["error"]})
            continue
        for row in r["rows"]:
            rows.append({"mix": r["mix"], "kind": r["kind"], "loadavg": [r["loadavg_start"], r["loadavg_end"]], **row})
    return rows


def aims(results: list[dict[str, Any]]) -> list[str]:
    """The issue's CPU aims, checked on this run: on mix-cpu every kind's packed strategy of its default attention
    (contract/backends.py) >= 0.95x one at a time; on small the best packed kind >= 1.15x."""
    lines = []
    for r in results:
        if "error" in r:
            continue
        default = f"packed-{BACKENDS[r['kind']].packed}"
        row = next((x for x in r["rows"] if x["strategy"] == default), None)
        if r["mix"] == "mix-cpu" and row:
            ok = "met" if row["x_one"] >= AIM_MIX else "MISSED"
            lines.append(
                f"- mix-cpu, {r['kind']} ({default}): {row['x_one']:.2f}x one at a time (aim >= {AIM_MIX}): {ok}"
            )
    small = [(x["x_one"], r["kind"], x["strategy"]) for r in results if r.get("mix") == "small" and "rows" in r
             for x in r["rows"] if x["strategy"].startswith("packed")]  # fmt: skip
    if small:
        best = max(small)
        ok = "met" if best[0] >= AIM_SMALL else "MISSED"
        lines.append(
            f"- small, best packed: {best[1]} {best[2]} at {best[0]:.2f}x one at a time (aim >= {AIM_SMALL}): {ok}"
        )
    return lines


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| workload | kind | strategy | calls | items/call | items/s | tokens/s | p50 call ms | p99 call ms | "
             "× one (per-round median) | work ÷ one | max rel L2 vs one | load avg start→end |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows_of(results):
        if "error" in r:
            lines.append(f"| {r['mix']} | {r['kind']} | failed: {r['error']} |" + " |" * 10)
            continue
        diff = "-" if r["max_rel_l2_vs_one"] is None else f"{r['max_rel_l2_vs_one']:.1e}"
        start, end = r["loadavg"]
        load = f"{start[0]:.1f}→{end[0]:.1f}" if start and end else "-"
        lines.append(
            f"| {r['mix']} | {r['kind']} | {r['strategy']} | {r['calls']} | {r['items_per_call']:.1f} | "
            f"{r['items_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['p50_call_s'] * 1e3:.0f} | "
            f"{r['p99_call_s'] * 1e3:.0f} | **{r['x_one']:.2f}** | {r['work_vs_one']:.2f} | {diff} | {load} |"
        )
    notes = sorted({f"- {r['kind']} {r['strategy']}: {r['artifact']} ({r['note']})" for r in rows_of(results)
                    if "note" in r})  # fmt: skip
    return "\n".join([*lines, "", *notes]) + "\n"


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """items/s per kind and strategy, one panel per workload; each bar labelled with its × one at a time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "error" not in r]
    mixes = list(dict.fromkeys(r["mix"] for r in ok))
    colors = {ONE: "#888888", PADDED: "#d62728", "packed-mask": "#1f77b4", "packed-padded": "#2ca02c"}
    fig, axes = plt.subplots(1, max(1, len(mixes)), figsize=(6 * max(1, len(mixes)), 4.5), squeeze=False)
    for ax, mix in zip(axes[0], mixes, strict=False):
        labels, values, bar_colors, notes = [], [], [], []
        for r in (r for r in ok if r["mix"] == mix):
            for row in r["rows"]:
                labels.append(f"{r['kind']} {row['strategy']}")
                values.append(row["items_per_s"])
                bar_colors.append(colors.get(row["strategy"], "#9467bd"))
                notes.append(f" {row['x_one']:.2f}x")
        ax.barh(labels, values, color=bar_colors)
        for i, (v, n) in enumerate(zip(values, notes, strict=True)):
            ax.text(v, i, n, va="center", fontsize=7)
        ax.set_title(mix)
        ax.set_xlabel("items/s (higher is better); label: x one at a time")
        ax.tick_params(axis="y", labelsize=7)
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA GPU is visible to torch", file=sys.stderr)
            return 2
    if args.quick:
        args.rounds, args.warmup = min(args.rounds, 2), min(args.warmup, 1)
    args.model = args.model or ensure_default("tiny" if args.quick else "full")
    mixes = args.workloads.split(",") if args.workloads else (
        QUICK_MIXES if args.quick else GPU_MIXES if args.device.startswith("cuda") else CPU_MIXES)  # fmt: skip
    unknown = [m for m in mixes if m not in MIXES]
    if unknown:
        print(f"error: unknown workload {unknown[0]!r}: use one of {sorted(MIXES)}", file=sys.stderr)
        return 2
    weights = weights_sha256(args.model)
    patch = load_config(args.model).patch_size
    found = find(args.artifacts_dir, args.device, args.precision, weights)
    tmp = None
    if args.quick and not any(f.packed for f in found):
        tmp = tempfile.TemporaryDirectory(prefix="mixed-quick-")
        found = find(quick_artifacts(args.model, Path(tmp.name)), args.device, args.precision, weights)
    kinds = args.kinds.split(",") if args.kinds else sorted({f.manifest.kind for f in found if f.packed})
    if not kinds:
        print(f"error: no packed {args.precision} artifact of {args.model} for {args.device} under "
              f"{args.artifacts_dir}", file=sys.stderr)  # fmt: skip
        return 2
    start, started = loadavg(), time.time()
    results = []
    for mix in mixes:
        shapes = MIXES[mix].shapes(args.seed, patch)
        for kind in kinds:
            batched, packed = choose(found, kind, shapes, patch)
            if not packed:
                results.append({"kind": kind, "mix": mix, "error": "no packed artifact of this kind takes every item"})
            else:
                names = ", ".join(f.path.name for f in [*([batched] if batched else []), *packed])
                print(f"mixed: {mix} {kind}: {names}", file=sys.stderr, flush=True)
                results.append(run_worker(kind, mix, batched, packed, args))
            if "error" in results[-1]:
                print(f"mixed: {mix} {kind}: failed: {results[-1]['error']}", file=sys.stderr)
    write(results, args, start, started)
    if tmp is not None:
        tmp.cleanup()
    return 1 if any("error" in r for r in results) else 0


def write(results: list[dict[str, Any]], args: argparse.Namespace, start: list[float], started: float) -> Path:
    default = ("cuda" if args.device.startswith("cuda") else "cpu") + ("-quick" if args.quick else "")
    out = args.out / (args.name or default)
    out.mkdir(parents=True, exist_ok=True)
    end = loadavg()
    desc = machine(args.device)
    header = (
        f"Machine: {desc}; load average (1/5/15 min) at start {start}, at end {end}; {args.precision}, "
        f"{args.rounds} timed rounds after {args.warmup} warm-up, seed {args.seed}, model {args.model}.\n\n"
        + "\n".join(f"- {m}: {MIXES[m].note}" for m in dict.fromkeys(r["mix"] for r in results))
    )
    checked = aims(results) if not args.device.startswith("cuda") else []
    text = markdown(results, header) + ("\nAims (CPU):\n" + "\n".join(checked) + "\n" if checked else "")
    report = {"machine": desc, "cpu": cpu_model(), "device": args.device, "precision": args.precision,
              "model": str(args.model), "rounds": args.rounds, "warmup": args.warmup, "seed": args.seed,
              "loadavg_start": start, "loadavg_end": end, "seconds": time.time() - started, "aims": checked,
              "results": results}  # fmt: skip
    (out / "mixed.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "mixed.md").write_text(text)
    plot(results, out / "mixed.png", f"{desc}, {args.precision}")
    print(text)
    print(f"wrote {out}/mixed.json, mixed.md, mixed.png")
    return out


if __name__ == "__main__":
    sys.exit(main())
