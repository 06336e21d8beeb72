"""Benchmark results -> statistics, a markdown table and a PNG plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(row: dict[str, Any], flops: float, images: int, tokens: int, floor_gflops: float | None) -> None:
    """Add p50/p90/p99, throughput, achieved TFLOP/s and fraction of the floor to a worker result (in place)."""
    lat = row["latencies_s"]
    p50 = statistics.median(lat)
    row.update(
        p50_s=p50,
        p90_s=percentile(lat, 90),
        p99_s=percentile(lat, 99),
        images_per_s=images / p50,
        tokens_per_s=tokens / p50,
        tflops=flops / p50 / 1e12,
        flops=flops,
    )
    if floor_gflops:
        floor_s = flops / (floor_gflops * 1e9)
        row.update(floor_s=floor_s, fraction_of_floor=floor_s / p50)


def markdown(rows: list[dict[str, Any]], machine: str, floors: dict[str, float], peak_note: str) -> str:
    lines = [
        f"Machine: {machine}",
        "",
        "Floors (best large-matmul throughput measured in this run): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in floors.items()),
        peak_note,
        "",
        "| workload | precision | target | p50 ms | p90 ms | p99 ms | images/s | tokens/s | TFLOP/s | "
        "x eager | floor ms | of floor | MFU | load s | peak RSS MiB | device MiB | of it outside torch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['workload']} | {r['precision']} | {r['label']} | failed: {r['error']} |" + " |" * 13)
            continue
        dev = f"{r['device_peak_mib']:.0f}" if r.get("device_peak_mib") is not None else "-"
        outside = f"{r['device_outside_torch_mib']:.0f}" if r.get("device_outside_torch_mib") is not None else "-"
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        floor = f"{r['floor_s'] * 1e3:.0f}" if "floor_s" in r else "-"
        frac = f"{r['fraction_of_floor']:.0%}" if "fraction_of_floor" in r else "-"
        lines.append(
            f"| {r['workload']} | {r['precision']} | {r['label']} | {r['p50_s'] * 1e3:.1f} | {r['p90_s'] * 1e3:.1f} | "
            f"{r['p99_s'] * 1e3:.1f} | {r['images_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['tflops']:.3f} | "
            f"{r.get('vs_eager', float('nan')):.2f} | {floor} | {frac} | {mfu} | {r['load_s']:.1f} | "
            f"{r['rss_peak_mib']:.0f} | {dev} | {outside} |"
        )
    return "\n".join(lines) + "\n"


def export_table(builds: list[dict[str, Any]]) -> str:
    if not builds:
        return ""
    lines = [
        "",
        "Export step (from each artifact's manifest):",
        "",
        "| artifact | kind | precision | build s | peak RSS MiB |",
        "|---|---|---|---:|---:|",
    ]
    for b in builds:
        lines.append(
            f"| {b['artifact']} | {b['kind']} | {b['precision']} | {b.get('seconds', float('nan')):.1f} | "
            f"{b.get('peak_rss_mib', float('nan')):.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Throughput per target and workload/precision, eager as the first (baseline) bar of each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    groups = sorted({(r["workload"], r["precision"]) for r in ok})
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 4), squeeze=False)
    for ax, (workload, precision) in zip(axes[0], groups, strict=False):
        sel = [r for r in ok if r["workload"] == workload and r["precision"] == precision]
        sel.sort(key=lambda r: (r["label"] != "eager", r["label"]))
        colors = ["#888888" if r["label"] == "eager" else "#1f77b4" for r in sel]
        ax.barh([r["label"] for r in sel], [r["images_per_s"] for r in sel], color=colors)
        for i, r in enumerate(sel):
            ax.text(r["images_per_s"], i, f" {r.get('vs_eager', 1.0):.2f}x", va="center", fontsize=8)
        ax.set_title(f"{workload} {precision}")
        ax.set_xlabel("images/s (higher is better)")
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
