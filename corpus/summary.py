"""Progress while a job runs (tqdm: items/s and ETA) and the summary at its end (items/s, tokens/s, failures by
reason as a table)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tqdm import tqdm

from .decode import REASONS
from .job import Index


class Progress:
    """A tqdm bar over the items of this run (updated per shard) and this run's totals."""

    def __init__(self, total: int, enabled: bool = True):
        self.started = time.perf_counter()
        self.items = self.tokens = self.shards = 0
        self.bar = tqdm(total=total, unit="item", desc="embedding", disable=not enabled or None, smoothing=0.1)

    def update(self, info: dict[str, Any]) -> None:
        self.items += int(info["rows"])
        self.tokens += int(info["tokens"])
        self.shards += 1
        self.bar.update(int(info["rows"]))

    def close(self) -> None:
        self.bar.close()


def failures(index: Index) -> tuple[Counter[str], dict[str, str]]:
    """Failed rows by reason over every finished shard, with the first example message of each reason."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for info in index.done.values():
        counts.update(info.get("reasons", {}))
        for reason, message in info.get("examples", {}).items():
            examples.setdefault(reason, message)
    return counts, examples


def failure_table(counts: Counter[str], examples: dict[str, str]) -> list[str]:
    order = sorted(counts, key=lambda r: (REASONS.index(r) if r in REASONS else len(REASONS), r))
    lines = ["| reason | rows | example |", "|---|---:|---|"]
    for reason in order:
        example = examples.get(reason, "").replace("|", "\\|")
        lines.append(f"| {reason} | {counts[reason]} | {example[:160]} |")
    return lines


def summary_lines(index: Index, progress: Progress, ran: dict[str, Any], seconds: float) -> list[str]:
    """The end-of-run report: what is in OUT, this run's throughput, failures by reason over the whole output."""
    rows = sum(int(info["rows"]) for info in index.done.values())
    counts, examples = failures(index)
    lines = [
        f"output      {index.out}: {rows} rows in {len(index.done)} of {index.shards} shards "
        f"({progress.shards} written by this run)",
    ]
    if progress.items:
        where = ran["where"] + (f", {ran['workers']} decode worker(s)" if "workers" in ran else "")
        lines.append(
            f"throughput  {progress.items} items in {seconds:.1f} s: {progress.items / seconds:.2f} items/s, "
            f"{progress.tokens / seconds:,.0f} tokens/s ({where}; {ran.get('engine', '')})"
        )
    else:
        lines.append("throughput  nothing to do: every shard was already done")
    lines.append(f"rows        {rows - sum(counts.values())} embedded, {sum(counts.values())} failed")
    if counts:
        lines += ["", *failure_table(counts, examples)]
    return lines
