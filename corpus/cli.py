"""`python -m corpus INPUT --out OUT --artifact ARTIFACT [--model DIR] ...`: embed a corpus, resumably.

    python -m corpus photos/ --out embeddings/ --artifact artifacts/onnx-fp32-image-448.onnx
    python -m corpus videos.parquet --out emb/ --artifact a.pt2 --mode codec --selection-column selection
    python -m corpus paths.txt --out emb/ --artifact a.onnx --features bf16 --pooled --ray --ray-address auto

Run the same command again after a crash or Ctrl-C: finished shards are kept and the rest is done; on a finished
output it does nothing and exits 0. Mistakes (missing INPUT, unknown column, bad artifact, OUT holding another
job) are one `error:` line and exit 2; a file that cannot be embedded is a row with its error, never a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator

from contract.errors import CheckpointError, InputError, ManifestError, ProfileError
from runtime import LoadError
from runtime.media import MODES

from .job import JobError
from .local import DecodePool, run_local
from .plan import OptionError, Options, Plan, prepare
from .shards import RunFailed
from .sources import SourceError
from .summary import Progress, summary_lines
from .table import FEATURES

USER_ERRORS = (SourceError, JobError, OptionError, InputError, ManifestError, LoadError, CheckpointError, ProfileError)


def default_workers() -> int:
    """Decode workers: every core but the one the main process computes on, at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corpus", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("input", help="a folder (recursive), a text file of paths, or a .parquet/.csv manifest")
    parser.add_argument("--out", required=True, help="output folder: Parquet shards + _index.json")
    parser.add_argument("--artifact", required=True, help="artifact to run (any kind runtime.load opens)")
    parser.add_argument(
        "--model",
        "--preprocessor",
        dest="model",
        help="checkpoint folder whose "
        "preprocessor_config.json to use (default: the one the artifact was exported from)",
    )
    media = parser.add_argument_group("media (as python -m runtime embed; defaults follow the artifact's profile)")
    media.add_argument("--mode", choices=MODES, default="crop")
    media.add_argument("--frames", type=int, help="frames sampled from each video (default: the profile's opt)")
    media.add_argument("--size", type=int, help="crop/codec: shortest edge = crop size (multiple of 14)")
    media.add_argument("--max-tokens", type=int, help="native: cap on the tokens of one image or frame")
    media.add_argument("--canvases", type=int, help="codec: canvases to fill (default: the profile's opt)")
    media.add_argument("--selection-column", help="manifest column naming a codec selection file per row")
    media.add_argument("--path-column", default="path", help="manifest column naming the files (default: path)")
    output = parser.add_argument_group("output")
    output.add_argument("--features", choices=sorted(FEATURES), default="fp32", help="stored features precision")
    output.add_argument("--pooled", action="store_true", help="also store the mean over tokens")
    output.add_argument("--shard-size", type=int, default=64, help="items per shard, the unit of work (default 64)")
    output.add_argument("--max-file-mib", type=float, default=2048.0, help="larger files are error rows")
    output.add_argument("--overwrite", action="store_true", help="replace what a job wrote in OUT")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    run = parser.add_argument_group("where it runs")
    run.add_argument("--device", help="cpu or cuda[:N] (default: the artifact's own; Ray actors with GPUs: cuda)")
    run.add_argument("--workers", type=int, default=default_workers(), help="decode processes (0: decode inline)")
    run.add_argument("--ray", action="store_true", help="run on Ray Data (a local instance unless an address)")
    run.add_argument("--ray-address", help="the cluster (default: $RAY_ADDRESS, else a local instance)")
    run.add_argument("--ray-actors", type=int, default=1, help="inference actors (1 CPU each; default 1)")
    run.add_argument("--ray-gpus-per-actor", type=float, default=0.0, help="GPUs per inference actor")
    run.add_argument("--ray-cpus", type=int, help="CPUs of a local Ray instance (default: all)")
    return parser


def check_run_args(args: argparse.Namespace) -> None:
    """Where-it-runs options (the job's own are checked by plan.check_options)."""
    bad = [
        f"{flag} must be {rule}, got {value}"
        for flag, value, ok, rule in (
            ("--workers", args.workers, args.workers >= 0, ">= 0"),
            ("--ray-actors", args.ray_actors, args.ray_actors >= 1, ">= 1"),
            ("--ray-gpus-per-actor", args.ray_gpus_per_actor, args.ray_gpus_per_actor >= 0, ">= 0"),
            ("--ray-cpus", args.ray_cpus, args.ray_cpus is None or args.ray_cpus >= 1, ">= 1"),
        )
        if not ok
    ]
    if bad:
        raise OptionError("; ".join(bad))


def options_from(args: argparse.Namespace) -> Options:
    names = [name for name in Options.__dataclass_fields__ if hasattr(args, name)]
    return Options(**{name: getattr(args, name) for name in names})


def execute(plan: Plan, args: argparse.Namespace, pool: DecodePool | None, progress: Progress) -> dict[str, object]:
    if args.ray:
        from .cluster import run_on_ray

        return run_on_ray(
            plan,
            progress,
            address=args.ray_address,
            actors=args.ray_actors,
            gpus_per_actor=args.ray_gpus_per_actor,
            cpus=args.ray_cpus,
        )
    return run_local(plan, pool, progress)


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Progress]:
    progress = Progress(total, enabled)
    try:
        yield progress
    finally:
        progress.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.ray:
        try:
            import ray.data  # noqa: F401  (fail early, in one line, where Ray is not installed)
        except ImportError as exc:
            print(f"error: --ray needs ray[data], not importable here ({exc}); make venv installs it", file=sys.stderr)
            return 2
    try:
        check_run_args(args)
        with contextlib.ExitStack() as stack:
            pools: list[DecodePool] = []

            def start_decoding() -> None:  # decode workers import while this process checks the artifact
                if args.workers > 0 and not args.ray:
                    pools.append(stack.enter_context(DecodePool(args.workers)))

            plan = prepare(options_from(args), start_decoding)
            for note in plan.notes:
                print(f"note: {note}", file=sys.stderr)
            with progress_bar(plan.todo_items(), not args.no_progress) as progress:
                ran = execute(plan, args, pools[0] if pools else None, progress)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; run the same command again to finish", file=sys.stderr)
        return 130
    print("\n".join(summary_lines(plan.index, progress, ran, time.perf_counter() - started)))
    return 0
