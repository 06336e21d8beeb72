"""On a Ray cluster (or a local Ray instance): the same shards, as a Ray Data pipeline.

    shards to do  --from_items-->  decode_shard (Ray tasks, 1 CPU each)  --map_batches-->  ShardEmbedder actors
    (the artifact loaded once per actor in __init__; each writes its shard file)  --iter_rows-->  the driver
    records each finished shard in OUT's index

A row of the dataset is a shard: its items (JSON) in, its decoded items (pickled numpy arrays) between the stages,
its index entry (JSON) out. A shard is embedded by `corpus.shards.finish_shard`, the function the single-machine
path calls, so both give the same batches and the same rows. Shard files are written by the actors, so OUT must be
a folder every node sees at the same path (a shared filesystem); the artifact and the inputs too.

`address` None starts a local instance (loopback only, no dashboard, usage stats off) unless RAY_ADDRESS names a
cluster; `address="auto"` or "ray://host:10001" joins one. Inside the actors `device` defaults to "cuda" when
actors get GPUs (`gpus_per_actor`), else the artifact's own device.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .decode import DecodeConfig, decode_with
from .plan import Plan
from .shards import RunFailed, ShardOutput, crash_hook, finish_shard
from .sources import Item
from .summary import Progress

BUNDLE_ROOT = str(Path(__file__).resolve().parent.parent)


def decode_shard(row: dict[str, Any], config: DecodeConfig) -> dict[str, Any]:
    """A Ray task: one shard's items (JSON) -> its decoded items (pickled; the processor cached per worker)."""
    items = [(int(i), Item(**item)) for i, item in json.loads(row["items"])]
    decoded = [decode_with(config, i, item) for i, item in items]
    return {"shard": row["shard"], "decoded": pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL)}


DECODER_BASE_BYTES = 512 * 2**20  # a decode worker's own memory (torch, transformers, PyAV): ~360 MiB measured


def decode_task_memory(plan: Plan) -> int:
    """The memory a decode task may hold: a worker's own, plus one decoded shard at the profile's largest item
    (float32 pixels)."""
    p = plan.profile
    return DECODER_BASE_BYTES + plan.options.shard_size * 3 * p.frames.max * p.height.max * p.width.max * 4


class ShardEmbedder:
    """A Ray actor (map_batches with this class): loads the artifact once, embeds and writes whole shards."""

    def __init__(self, artifact: str, device: str | None, output: ShardOutput):
        import runtime

        self.runner = runtime.load(artifact, device=device)
        self.output = output

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shards, infos = [], []
        for shard, payload in zip(batch["shard"], batch["decoded"], strict=True):
            info = finish_shard(self.runner, self.output, int(shard), pickle.loads(payload))
            shards.append(int(shard))
            infos.append(json.dumps(info))
        return {"shard": np.asarray(shards, np.int64), "info": np.asarray(infos, dtype=object)}


def init_ray(address: str | None, cpus: int | None) -> bool:
    """Connect to the cluster (address or RAY_ADDRESS) or start a local instance; True if this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return True
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The local instance's workers inherit this environment: the bundle on their PYTHONPATH (cheaper than a
    # runtime_env, which starts fresh workers for it).
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if BUNDLE_ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([BUNDLE_ROOT, *paths])
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",  # a local instance listens on loopback only
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    return True


def shard_rows(plan: Plan, todo: list[int]) -> list[dict[str, Any]]:
    return [{"shard": k, "items": json.dumps([[i, asdict(plan.items[i])] for i in plan.ranges[k]])} for k in todo]


def record_shards(plan: Plan, dataset: Any, progress: Progress) -> str:
    """Run the pipeline, recording each shard in the index as its actor finishes it; the engine that ran."""
    engine = ""
    try:
        for written, row in enumerate(dataset.iter_rows(), start=1):
            info = json.loads(row["info"])
            crash_hook(written)
            plan.index.record(int(row["shard"]), info)
            progress.update(info)
            engine = info.get("engine", engine)
    except Exception as exc:  # Ray's errors carry remote tracebacks: one line here, the rest in Ray's logs
        lines = str(exc).strip().splitlines() or [""]
        raise RunFailed(
            f"the Ray pipeline failed ({type(exc).__name__}: {lines[0][:300]}); finished shards are kept, run the "
            "same command again to resume"
        ) from exc
    return engine


def run_on_ray(
    plan: Plan, progress: Progress, *, address: str | None, actors: int, gpus_per_actor: float, cpus: int | None
) -> dict[str, Any]:
    """Embed every shard the index does not have on Ray; returns what ran."""
    import ray
    import ray.data

    todo = plan.index.todo()
    where = f"Ray ({address or os.environ.get('RAY_ADDRESS') or 'local instance'}), {actors} actor(s)"
    if not todo:
        return {"where": where, "engine": ""}
    started = init_ray(address, cpus)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours (tqdm) counts items
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        device = plan.options.device or ("cuda" if gpus_per_actor > 0 else None)
        rows = shard_rows(plan, todo)
        dataset: ray.data.Dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        # Decode tasks ask for the memory they hold. Besides being true, it keeps them tasks: Ray Data fuses
        # a task map into the following actor map when their resources are equal, which would decode inside the
        # actors, one shard after the other, with no overlap.
        dataset = dataset.map(
            functools.partial(decode_shard, config=plan.decode), num_cpus=1, memory=decode_task_memory(plan)
        )
        dataset = dataset.map_batches(
            ShardEmbedder,
            fn_constructor_kwargs={
                "artifact": str(Path(plan.artifact).resolve()),
                "device": device,
                "output": plan.output,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=gpus_per_actor,
            num_cpus=1,
        )
        engine = record_shards(plan, dataset, progress)
    finally:
        if started:
            ray.shutdown()
    return {"where": where, "engine": engine}
