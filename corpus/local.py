"""One machine: decoding in worker processes (spawn; the processor loaded once per worker), overlapped with inference
in this process, shard by shard, in order.

The pool decodes the items of the next `AHEAD` shards while the main process embeds and writes the current one
(`concurrent.futures.ProcessPoolExecutor`, results collected in item order, so a shard's batches are the same
on every run). `workers=0` decodes in this process (no overlap; for debugging).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import runtime

from .decode import Decoded, decode_in_worker, decode_with, init_worker
from .plan import Plan
from .shards import RunFailed, crash_hook, finish_shard
from .summary import Progress

AHEAD = 2  # shards decoded ahead of the one being embedded


class WorkerDied(RunFailed):
    """A decode worker process died (a crash inside a decoder library); the finished shards are kept."""


def decoded_inline(plan: Plan, todo: list[int]) -> Generator[tuple[int, list[Decoded]], None, None]:
    for shard in todo:
        yield shard, [decode_with(plan.decode, i, plan.items[i]) for i in plan.ranges[shard]]


def decoded_in_pool(plan: Plan, todo: list[int], workers: int) -> Generator[tuple[int, list[Decoded]], None, None]:
    """(shard, its decoded items in order) for each shard of `todo`, decoded `AHEAD` shards ahead by the pool."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(plan.decode,))

    def submit(shard: int) -> tuple[int, list[Future[Decoded]]]:
        return shard, [pool.submit(decode_in_worker, i, plan.items[i]) for i in plan.ranges[shard]]

    try:
        queue = deque(submit(shard) for shard in todo[:AHEAD])
        following = iter(todo[AHEAD:])
        while queue:
            shard, futures = queue.popleft()
            nxt = next(following, None)
            if nxt is not None:
                queue.append(submit(nxt))
            try:
                decoded = [f.result() for f in futures]
            except BrokenProcessPool as exc:
                raise WorkerDied(
                    f"a decode worker process died while decoding shard {shard} ({exc}); finished shards are kept, "
                    "and a file of that shard crashes its decoder: find it with --workers 0, or leave it out"
                ) from None
            yield shard, decoded
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_local(plan: Plan, workers: int, progress: Progress) -> dict[str, Any]:
    """Embed every shard the index does not have; returns what ran (engine, decode workers)."""
    todo = plan.index.todo()
    if not todo:
        return {"where": "single machine", "engine": "", "workers": workers}
    # The manifest was verified by plan.prepare a moment ago (every file's sha256): not hashed twice.
    runner = runtime.load(plan.artifact, device=plan.options.device, verify=False)
    engine = f"{runner.kind} ({runner.provider}) on {runner.device}"
    stream = decoded_in_pool(plan, todo, workers) if workers > 0 else decoded_inline(plan, todo)
    with runner, contextlib.closing(stream):  # the pool shut down and the runner closed, however this ends
        for written, (shard, decoded) in enumerate(stream, start=1):
            info = finish_shard(runner, plan.output, shard, decoded)
            crash_hook(written)
            plan.index.record(shard, info)
            progress.update(info)
    return {"where": "single machine", "engine": engine, "workers": workers}
