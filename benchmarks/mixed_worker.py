"""One kind's strategies on one mixed workload, timed in ONE process, round by round (`python -m benchmarks.mixed`
runs one of these per kind).

    python -m benchmarks.mixed_worker --kind K --model DIR --mix NAME [--batched ART] --packed ART [--packed ART]
        [--device D] [--rounds R] [--warmup W] [--seed S]

prints one JSON object. Every strategy's calls are prepared first (the runtime's checks, padding, packing: outside the
timed region, as `benchmarks.worker` times every target); in a round every strategy makes all its calls, the
strategies' calls interleaved in proportion to their estimated work (`rounds`), so a burst of load from other jobs
lands on every strategy alike and the per-round ratios hold when the absolute times drift (as benchmarks/interleaved.py
rotates its targets call by call). A pass's time is the sum of its calls' times. The first `--warmup` rounds are not
timed; in the first one every packed output is compared with the one-at-a-time output of the same item (a packed
item's output is its own; a padded item's is not, and is not compared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES
from contract.packing import unpack
from contract.profiles import PackedProfile, ShapeProfile
from models import load_config
from models.tf32 import exact_float32
from runtime.base import Runner
from runtime.packed import COSTS, FLOPS_ONLY, Costs, Widths

from .interleaved import synchronize
from .mixes import MIXES, Inputs, Item, pad_batch, padded_calls, padded_shape

ONE, PADDED = "one-at-a-time", "padded"


@dataclass
class Strategy:
    """A strategy's prepared calls of one workload: the items of each call and its inputs as the runner takes them."""

    name: str
    artifact: str
    runner: Runner
    calls: list[tuple[list[int], tuple[torch.Tensor, ...]]]
    computed_tokens: int  # tokens the calls run (padded: with the padding)
    call_work: list[float]  # the planner's FLOP estimate of each call (runtime/packed.py Widths.work)
    note: str = ""
    pass_s: list[float] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def work(self) -> float:
        return sum(self.call_work)

    def call(self, index: int, device: torch.device, keep: bool) -> float:
        """Call `index`, timed (device work included); its outputs kept when `keep`."""
        items, inputs = self.calls[index]
        synchronize(device)
        begin = time.perf_counter()
        out = self.runner.run_prepared(*inputs)
        synchronize(device)
        seconds = time.perf_counter() - begin
        if keep:
            self._keep(items, inputs, out)
        return seconds

    def _keep(self, items: list[int], inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if self.runner.packed:
            for i, o in zip(items, unpack(out, inputs[2], len(items)), strict=True):  # a filler item is dropped
                self.outputs[i] = o[0].float().cpu()
        elif self.name == ONE:
            self.outputs[items[0]] = out[0].float().cpu()


@dataclass(frozen=True)
class Pricing:
    """The planner's estimate of a call (runtime/packed.py): its work under the device's costs plus a call's fixed
    cost."""

    widths: Widths
    costs: Costs
    itemsize: int

    def __call__(self, lengths: list[int], attention: str) -> float:
        return self.widths.work(lengths, attention, self.costs) + self.widths.call_cost(self.costs, self.itemsize)


def one_at_a_time(runner: Runner, items: list[Inputs], widths: Pricing) -> Strategy:
    """One call an item: the batched artifact at B = 1, or a packed artifact one item a call when no batched one
    covers the items."""
    lengths = [int(pos.shape[1]) for _, pos in items]
    if runner.packed:
        calls = [(call, inputs) for i in range(len(items)) for call, inputs in _plan(runner, items, [i])]
        note = f"the packed artifact, one item a call ({runner.manifest.extra.get('packed_attention')} attention)"
    else:
        calls = [([i], runner.prepare(*item)) for i, item in enumerate(items)]
        note = "the batched artifact, B = 1"
    work = [widths([lengths[i] for i in call], "mask") for call, _ in calls]
    return Strategy(ONE, runner.path.name, runner, calls, sum(lengths), work, note)


def _plan(runner: Runner, items: list[Inputs], indices: list[int]) -> list[tuple[list[int], tuple[torch.Tensor, ...]]]:
    return [([indices[j] for j in call], inputs) for call, inputs in runner.plan_packed([items[i] for i in indices])]


def padded(runner: Runner, items: list[Inputs], shapes: list[Item], budget: int, widths: Pricing) -> Strategy:
    """Padded-to-the-largest batches of the batched artifact (benchmarks/mixes.py), within `budget` tokens a call."""
    profile = runner.profile
    assert isinstance(profile, ShapeProfile)
    patch = profile.patch
    groups = padded_calls(shapes, patch, budget, profile.batch.max)
    calls: list[tuple[list[int], tuple[torch.Tensor, ...]]] = []
    computed, work = 0, []
    for group in groups:
        pv, pos = pad_batch([items[i] for i in group], [shapes[i] for i in group], patch)
        calls.append((group, runner.prepare(pv, pos)))
        t, h, w = padded_shape([shapes[i] for i in group])
        per_item = t * (h // patch) * (w // patch)
        computed += len(group) * per_item
        work.append(widths([per_item] * len(group), "padded"))  # B x (L_pad linear + L_pad^2 attention)
    note = f"the batched artifact, {len(groups)} batches padded to their largest T/H/W (outputs not the items' own)"
    return Strategy(PADDED, runner.path.name, runner, calls, computed, work, note)


def packed(runner: Runner, items: list[Inputs], widths: Pricing) -> Strategy:
    attention = str(runner.manifest.extra.get("packed_attention", "mask"))
    calls = _plan(runner, items, list(range(len(items))))
    lengths = [int(pos.shape[1]) for _, pos in items]
    work = [widths([lengths[i] for i in call], attention) for call, _ in calls]
    sizes = [len(call) for call, _ in calls]
    note = f"{attention} attention, {len(calls)} calls of {min(sizes)}-{max(sizes)} items"
    return Strategy(f"packed-{attention}", runner.path.name, runner, calls, sum(lengths), work, note)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def strategies(args: argparse.Namespace, items: list[Inputs], shapes: list[Item]) -> list[Strategy]:
    import runtime

    device = torch.device(args.device)
    packed_runners = [runtime.load(p, device=device) for p in args.packed]
    if not packed_runners or any(not r.packed for r in packed_runners):
        raise SystemExit("error: --packed takes packed artifacts (a packed profile), at least one")
    first = packed_runners[0]
    config = first.manifest.source.get("config") or {}
    pricing = Pricing(
        Widths.of(config, first.manifest.extra.get("layers_run")),
        COSTS.get(device.type, FLOPS_ONLY),
        torch.empty((), dtype=first.dtype).element_size(),
    )
    out: list[Strategy] = []
    batched = runtime.load(args.batched, device=device) if args.batched else None
    if batched is not None and batched.packed:
        raise SystemExit(f"error: --batched {args.batched} is a packed artifact")
    out.append(one_at_a_time(batched or first, items, pricing))
    if batched is not None:
        profile = first.profile
        assert isinstance(profile, PackedProfile)
        out.append(padded(batched, items, shapes, profile.call_tokens.max, pricing))
    out += [packed(r, items, pricing) for r in packed_runners]
    return out


def rounds(runs: list[Strategy], device: torch.device, warmup: int, count: int, log: Callable[[str], None]) -> None:
    """`warmup` + `count` rounds; in each, every strategy makes all its calls, the strategies' calls interleaved in
    proportion to their estimated work (the strategy least far through its pass makes its next call; ties go round
    the strategies in an order that rotates each round), so a burst of load from other jobs lands on every strategy
    alike. A strategy's pass time is the sum of its calls' times."""
    with torch.inference_mode(), exact_float32():
        for r in range(warmup + count):
            order = runs[r % len(runs) :] + runs[: r % len(runs)]
            done = {s.name: 0 for s in runs}
            progress = {s.name: 0.0 for s in runs}
            seconds = {s.name: 0.0 for s in runs}
            while True:
                left = [s for s in order if done[s.name] < len(s.calls)]
                if not left:
                    break
                s = min(left, key=lambda x: progress[x.name])  # the first of equals in `order`
                i = done[s.name]
                took = s.call(i, device, keep=r == 0)
                seconds[s.name] += took
                progress[s.name] += s.call_work[i] / s.work
                done[s.name] += 1
                if r >= warmup:
                    s.call_s.append(took)
            if r >= warmup:
                for s in runs:
                    s.pass_s.append(seconds[s.name])
            log(f"round {r + 1}/{warmup + count}" + (" (warm-up)" if r < warmup else "") + ": " +
                ", ".join(f"{s.name} {seconds[s.name]:.2f} s" for s in runs))  # fmt: skip


def summarise(runs: list[Strategy], n_items: int, real_tokens: int) -> list[dict[str, Any]]:
    base = runs[0]
    rows = []
    for s in runs:
        ratios = [b / t for b, t in zip(base.pass_s, s.pass_s, strict=True)]  # per round: interleaved
        pass_s = statistics.median(s.pass_s)
        compared = sorted(set(s.outputs) & set(base.outputs)) if s is not base and s.runner.packed else []
        diff = max((rel_l2(s.outputs[i], base.outputs[i]) for i in compared), default=None)
        rows.append({
            "strategy": s.name, "artifact": s.artifact, "note": s.note, "calls": len(s.calls),
            "items_per_call": n_items / len(s.calls), "pass_s": s.pass_s, "pass_median_s": pass_s,
            "items_per_s": n_items / pass_s, "tokens_per_s": real_tokens / pass_s,
            "computed_tokens": s.computed_tokens, "work_vs_one": s.work / base.work,
            "p50_call_s": statistics.median(s.call_s), "p99_call_s": _percentile(s.call_s, 99), "call_s": s.call_s,
            "x_one": statistics.median(ratios), "x_one_rounds": ratios,
            "max_rel_l2_vs_one": diff, "compared_items": len(compared),
        })  # fmt: skip
    return rows


def _percentile(values: list[float], q: float) -> float:
    from .report import percentile

    return percentile(values, q)


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mixed_worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--mix", required=True, choices=sorted(MIXES))
    p.add_argument("--batched", help="batched artifact: one at a time (B = 1) and padded batches")
    p.add_argument("--packed", action="append", default=[], help="packed artifact (repeatable: mask and padded)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p


def measure(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    mix = MIXES[args.mix]
    patch = load_config(args.model).patch_size
    load_start = loadavg()
    started = time.time()
    import runtime

    precision = runtime.load(args.packed[0], device=device).precision if args.packed else "fp32"
    shapes = mix.shapes(args.seed, patch)
    items = mix.items(args.seed, DTYPES[precision], patch, str(device))
    runs = strategies(args, items, shapes)

    def log(line: str) -> None:
        print(f"{args.kind} {args.mix}: {line}", file=sys.stderr, flush=True)

    rounds(runs, device, args.warmup, args.rounds, log)
    real = sum(s.tokens(patch) for s in shapes)
    return {
        "kind": args.kind, "mix": args.mix, "seed": args.seed, "precision": precision, "device": str(device),
        "items": len(items), "tokens": real, "shapes": [[s.source, s.frames, s.height, s.width] for s in shapes],
        "rows": summarise(runs, len(items), real), "rounds": args.rounds, "warmup": args.warmup,
        "threads": torch.get_num_threads(), "loadavg_start": load_start, "loadavg_end": loadavg(),
        "seconds": time.time() - started,
        "calls": {s.name: [list(map(int, c)) for c, _ in s.calls] for s in runs},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
