"""One machine: decoding in worker processes (spawn; the processor loaded once per worker), overlapped with inference
in this process, shard by shard, in order.

`DecodePool` starts the workers before anything else (they import torch and transformers while this process checks
the artifact and lists the input); the pool then decodes the items of the next `AHEAD` shards while this process
embeds and writes the current one (`concurrent.futures.ProcessPoolExecutor`; results collected in item order, so a
shard's batches are the same on every run). `workers=0` decodes in this process, between the shards' inference.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

import torch

import runtime

from .decode import Decoded, decode_with, init_worker
from .plan import Plan
from .shards import RunFailed, crash_hook, finish_shard
from .summary import Progress

AHEAD = 2  # shards decoded ahead of the one being embedded
Stream = Generator[tuple[int, list[Decoded]], None, None]


class WorkerDied(RunFailed):
    """A decode worker process died (a crash inside a decoder library); the finished shards are kept."""


class DecodePool:
    """`workers` decode processes (spawn), started at once; a context manager that shuts them down."""

    def __init__(self, workers: int):
        self.workers, self.used = workers, False
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=spawn, initializer=init_worker)
        for _ in range(workers):  # the pool spawns a worker per submitted task while none is idle: start them now
            self.pool.submit(os.getpid)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # After an error or with nothing decoded, return at once: workers still importing end by themselves (their
        # task queue closed, or their parent gone).
        self.pool.shutdown(wait=kind is None and self.used, cancel_futures=True)

    def decoded(self, plan: Plan, todo: list[int]) -> Stream:
        """(shard, its decoded items in order) for each shard of `todo`, decoded `AHEAD` shards ahead."""
        self.used = True

        def submit(shard: int) -> tuple[int, list[Future[Decoded]]]:
            return shard, [self.pool.submit(decode_with, plan.decode, i, plan.items[i]) for i in plan.ranges[shard]]

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


def decoded_inline(plan: Plan, todo: list[int]) -> Stream:
    for shard in todo:
        yield shard, [decode_with(plan.decode, i, plan.items[i]) for i in plan.ranges[shard]]


def share_cores(workers: int) -> None:
    """Leave the decode workers their cores: torch's CPU threads in this process = cores - workers (at least 1).
    With a thread per core while a worker decodes, the threads' barriers wait on a busy core: on 2 cores with one
    worker, the tiny pt2 artifact's calls for 380 items took 16.7 s instead of 2.3 s (measured). onnxruntime's own
    thread pool is the runner's business."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - workers))


def run_local(plan: Plan, pool: DecodePool | None, progress: Progress) -> dict[str, Any]:
    """Embed every shard the index does not have (decoded by `pool`, or inline); returns what ran."""
    ran: dict[str, Any] = {"where": "single machine", "engine": "", "workers": pool.workers if pool else 0}
    todo = plan.index.todo()
    if not todo:
        return ran
    # The manifest was verified by plan.prepare a moment ago (every file's sha256): not hashed twice.
    runner = runtime.load(plan.artifact, device=plan.options.device, verify=False)
    if pool and runner.device.type == "cpu":
        share_cores(pool.workers)
    ran["engine"] = f"{runner.kind} ({runner.provider}) on {runner.device}"
    stream = pool.decoded(plan, todo) if pool else decoded_inline(plan, todo)
    with runner, contextlib.closing(stream):  # the runner closed and the stream stopped, however this ends
        for written, (shard, decoded) in enumerate(stream, start=1):
            info = finish_shard(runner, plan.output, shard, decoded)
            crash_hook(written)
            plan.index.record(shard, info)
            progress.update(info)
    return ran
