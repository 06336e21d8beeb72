"""Time and peak memory of exporting the full-size model (fp32) to ONNX and torch.export on this machine.

    .venv/bin/python -m benchmarks.export_fullsize [--model DIR] [--profile image-448] [--kinds onnx,pt2] [--keep DIR]

Each build runs `python -m export <kind>` in its own process, one after another, so every peak is its own: the
manifest's `build.peak_rss_mib` (the build itself, high-water mark reset when it starts) and the whole process's
max RSS (interpreter, imports and the build). Writes benchmarks/results/export-fullsize-cpu.{json,md}. The
artifacts go to a temporary folder that is deleted afterwards unless --keep names a folder to keep them in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contract.manifest import read_manifest, tool_versions
from contract.profiles import resolve_profile
from export.artifact import artifact_name
from models import load_config, weights_sha256
from models.modeling import expected_shapes
from models.synthetic import ensure_default

RESULTS = Path("benchmarks/results")
NAME = "export-fullsize-cpu"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "gpu": None,
    }


def run_build(kind: str, model: Path, precision: str, profile: str, out: Path) -> dict[str, Any]:
    """One `python -m export` process; its wall time and max RSS come from wait4."""
    cmd = [sys.executable, "-m", "export", kind, "--model", str(model), "--precision", precision]
    cmd += ["--profile", profile, "--out", str(out)]
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: {kind} export failed (exit {proc.returncode})")
    artifact = out / artifact_name(kind, precision, [resolve_profile(profile)])
    manifest = read_manifest(artifact)
    files = [artifact, *(artifact.with_name(name) for name in manifest.side_files)]
    return {
        "kind": kind,
        "precision": precision,
        "profile": profile,
        "artifact": artifact.name,
        "files": [f.name for f in files],
        "artifact_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        "build_seconds": manifest.build["seconds"],
        "build_peak_rss_mib": manifest.build["peak_rss_mib"],
        "stages_seconds": manifest.build["stages"],
        "process_wall_seconds": round(wall, 1),
        "process_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "verify": manifest.build["verify"],
        "extra": {k: manifest.extra[k] for k in ("opset", "external_data", "ops") if k in manifest.extra},
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Full-size export on the CPU",
        "",
        f"{report['model']['preset']} synthetic checkpoint ({report['model']['parameters'] / 1e6:.0f} M parameters), "
        f"profile `{report['runs'][0]['profile']}`, on {m['cpu']} ({m['cpu_count']} cores, {m['memory_gib']} GiB), "
        f"torch {report['tools'].get('torch')}, onnx {report['tools'].get('onnx')}, "
        f"onnxruntime {report['tools'].get('onnxruntime')}. {report['created']}; 1-minute load average "
        f"{m['loadavg_1m_before_after'][0]} before, {m['loadavg_1m_before_after'][1]} after (a shared machine: other "
        "jobs slow the builds down).",
        "",
        "| kind | precision | size MiB | export s | verify s | total s | build peak MiB | process peak MiB | "
        "verify rel L2 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        stages = r["stages_seconds"]
        verify = stages.get("verify", 0.0)
        export_s = r["build_seconds"] - verify
        rel = r["verify"].get("rel_l2")
        lines.append(
            f"| {r['kind']} | {r['precision']} | {r['artifact_mib']} | {export_s:.1f} | {verify:.1f} | "
            f"{r['build_seconds']:.1f} | {r['build_peak_rss_mib']:.0f} | {r['process_peak_rss_mib']:.0f} | "
            + (f"{rel:.1e} |" if rel is not None else "- |")
        )
    lines += [
        "",
        "- *export s*: everything but the verification run (load, trace, convert, save, check); *verify s*: the",
        "  artifact and eager at the profile's min shape; *total s* = the manifest's `build.seconds`.",
        "- *build peak*: the build's own high-water mark (VmHWM reset at its start, so it includes the already",
        "  imported libraries); *process peak*: max RSS of the whole `python -m export` process.",
        "- Stage seconds per run are in the JSON (`stages_seconds`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_fullsize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint (default: the synthetic full-size one)")
    parser.add_argument("--profile", default="image-448")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--kinds", default="onnx,pt2", help="comma-separated kinds (default onnx,pt2)")
    parser.add_argument("--keep", type=Path, help="write the artifacts here and keep them")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or ensure_default("full")
    config = load_config(model)
    parameters = sum(math.prod(shape) for shape in expected_shapes(config).values())
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="export-fullsize-") as tmp:
        out = args.keep or Path(tmp)
        for kind in args.kinds.split(","):
            runs.append(run_build(kind, model, args.precision, args.profile, out))
    report = {
        "name": NAME,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        "tools": tool_versions(),
        "model": {
            "preset": json.loads((model / "config.json").read_text()).get("synthetic", {}).get("preset", "checkpoint"),
            "checkpoint": str(model),
            "weights_sha256": weights_sha256(model),
            "parameters": parameters,
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
        },
        "command": " ".join(["python -m benchmarks.export_fullsize", *(argv if argv is not None else sys.argv[1:])]),
        "runs": runs,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{NAME}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (args.results / f"{NAME}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
