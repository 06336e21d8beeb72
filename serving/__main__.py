"""python -m serving {serve, repository, embed}: see serving/__init__.py and the README's Serving section."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import numpy as np

from contract.profiles import DEFAULT_PROFILE, PROFILES, Profile, ProfileError, requested_profiles

from . import MODEL_NAME
from .artifacts import ArtifactInfo, ServingError, default_checkpoint, find_default, read_artifact
from .model_config import ServeOptions


def _sizes(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _artifact(args: argparse.Namespace) -> ArtifactInfo:
    if args.artifact:
        return read_artifact(args.artifact)
    info = find_default(
        args.artifacts_dir, model=args.model, precision=args.precision, profile=_profile(args), device=args.device
    )
    return read_artifact(info.path)  # verify its sha256 now, not in the server


def _profile(args: argparse.Namespace) -> Profile:
    """The one profile asked for, resolved as export resolves it (--profile NAME|JSON, or trtexec-style shapes)."""
    try:
        profiles = requested_profiles([args.profile] if args.profile else [], *_shapes(args))
    except ProfileError as exc:
        raise ServingError(str(exc)) from None
    if len(profiles) > 1:
        raise ServingError("give --profile or --min-shapes/--opt-shapes/--max-shapes, not both")
    return profiles[0] if profiles else PROFILES[DEFAULT_PROFILE]


def _shapes(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    return args.min_shapes, args.opt_shapes, args.max_shapes


def _options(args: argparse.Namespace) -> ServeOptions:
    params = {"device": args.device} if getattr(args, "device", None) and args.device != "cpu" else {}
    return ServeOptions(
        model_name=args.model_name,
        preferred_batch_sizes=args.preferred_batch_sizes or (),
        max_queue_delay_us=args.max_queue_delay_us,
        instance_count=args.instances,
        instance_kind=args.instance_kind,
        parameters=params,
    )


def serve(args: argparse.Namespace) -> int:
    from .launcher import Ports, TritonServer
    from .repository import write_repository

    info = _artifact(args)
    with tempfile.TemporaryDirectory(prefix="onevision-serve-") as tmp:
        write_repository(info, Path(tmp) / "models", _options(args), python_backend=True, link=True)
        server = TritonServer(
            Path(tmp) / "models",
            Ports(args.http_port, args.grpc_port, args.metrics_port),
            address=args.address,
            exit_timeout_s=args.exit_timeout_s,
        )
        stopping = False

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True  # Triton runs in its own session: it gets SIGINT from stop() below, once

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(
                f"serving {info.path} ({info.kind} {info.precision}, profile {info.profile.name!r}) "
                f"as {args.model_name!r}"
            )
            server.start(stream_log=True, timeout_s=args.start_timeout_s)
            print(
                f"ready: HTTP {server.url}  gRPC {server.grpc_url}  metrics http://{args.address}:{args.metrics_port}"
                "/metrics  (Ctrl-C stops after in-flight requests finish)",
                flush=True,
            )
            while not stopping and server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
            code = server.stop()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            server.close()
    print(f"tritonserver exited with code {code}")
    return code


def repository(args: argparse.Namespace) -> int:
    from .repository import write_repository

    info = _artifact(args)
    folder = write_repository(
        info, args.out, _options(args), python_backend=args.python_backend, overwrite=args.overwrite
    )
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def embed(args: argparse.Namespace) -> int:
    from .client import EncoderClient, embed_image

    client = EncoderClient(args.url, args.protocol, args.model_name)
    try:
        pixels, positions, features = embed_image(
            args.image, client, args.preprocessor or default_checkpoint(), args.size
        )
    finally:
        client.close()
    print(f"pixel_values {tuple(pixels.shape)} {pixels.dtype}, patch_positions {tuple(positions.shape)}")
    print(f"last_hidden_state {tuple(features.shape)} {features.dtype} via {args.protocol} {args.url}")
    print(f"mean {float(features.astype(np.float64).mean()):+.6f}  std {float(features.astype(np.float64).std()):.6f}")
    if args.out:
        np.save(args.out, features)
        print(f"wrote {args.out}")
    return 0


def _artifact_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", help="artifact to serve (default: the best one under --artifacts-dir, see README)")
    p.add_argument("--artifacts-dir", default="artifacts")
    p.add_argument("--model", help="checkpoint the default artifact was built from (default: the synthetic full one)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument(
        "--profile",
        metavar="NAME|JSON",
        help=f"shape profile the artifact was exported for (default "
        f"{DEFAULT_PROFILE}): a name or a JSON file, as given to export",
    )
    p.add_argument("--min-shapes", metavar="SPEC", help="or trtexec-style shapes, as given to export")
    p.add_argument("--opt-shapes", metavar="SPEC")
    p.add_argument("--max-shapes", metavar="SPEC")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (where the model instance runs)")
    p.add_argument("--model-name", default=MODEL_NAME)
    p.add_argument("--preferred-batch-sizes", type=_sizes, help="e.g. 4,8 (default: the profile's opt and max)")
    p.add_argument("--max-queue-delay-us", type=int, default=1000, help="dynamic batcher queue delay (default 1000)")
    p.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    p.add_argument("--instance-kind", choices=("auto", "cpu", "gpu"), default="auto")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve an artifact through Triton (nvidia-pytriton's tritonserver)")
    _artifact_args(s)
    s.add_argument("--address", default="127.0.0.1", help="listen address (0.0.0.0 for every interface)")
    s.add_argument("--http-port", type=int, default=8000)
    s.add_argument("--grpc-port", type=int, default=8001)
    s.add_argument("--metrics-port", type=int, default=8002)
    s.add_argument("--exit-timeout-s", type=int, default=30, help="how long shutdown waits for in-flight requests")
    s.add_argument("--start-timeout-s", type=float, default=300.0)
    s.set_defaults(func=serve)
    r = sub.add_parser("repository", help="write a Triton model repository for a full Triton server")
    _artifact_args(r)
    r.add_argument("--out", type=Path, default=Path("model_repository"))
    r.add_argument("--python-backend", action="store_true", help="Python backend (runtime.load) for any kind")
    r.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    r.set_defaults(func=repository)
    e = sub.add_parser("embed", help="client example: embed an image file through a running server")
    e.add_argument("image")
    e.add_argument("--url", default="127.0.0.1:8000", help="HTTP 127.0.0.1:8000 or gRPC 127.0.0.1:8001")
    e.add_argument("--protocol", choices=("http", "grpc"), default="http")
    e.add_argument("--preprocessor", help="checkpoint folder with preprocessor_config.json (default: synthetic full)")
    e.add_argument("--size", type=int, help="crop size in pixels (default: the preprocessor's)")
    e.add_argument("--model-name", default=MODEL_NAME)
    e.add_argument("--out", type=Path, help="save last_hidden_state as .npy")
    e.set_defaults(func=embed)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ServingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
