"""`python -m runtime COMMAND ...`: subcommands dispatched by name, each imported only when used.

    python -m runtime info ARTIFACT                  # manifest summary; sha256 checked; loads it and names the provider
    python -m runtime run ARTIFACT --pixel-values pv.npy --positions pos.npy --out out.npy [--device D]
    python -m runtime embed FILE --artifact ...      # runtime/embed.py (image/video files end to end)

`run` is the Python twin of the C++ `onevision_run` (same .npy conventions: float32 pixel values for fp32 and bf16
artifacts, float16 for fp16; int64 or int32 positions; bf16 outputs written as float32). To add a command, add an
entry to COMMANDS: name -> ("module:function", help); the function takes argv (list[str]) and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("runtime.__main__:info_main", "show an artifact's manifest, check its sha256 and load it"),
    "run": ("runtime.__main__:run_main", "run an artifact on .npy inputs and write the output .npy"),
    "embed": ("runtime.embed:main", "embed an image or video file through an artifact (or eager)"),
}


def _errors() -> tuple[type[Exception], ...]:
    from contract.errors import InputError, ManifestError

    from .base import LoadError

    return (InputError, ManifestError, LoadError)


def info_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime info", description=COMMANDS["info"][1])
    parser.add_argument("artifact")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: the artifact's own)")
    args = parser.parse_args(argv)
    from . import load

    try:
        runner = load(args.artifact, device=args.device)
    except _errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m, p = runner.manifest, runner.profile
    print(f"artifact   {runner.path}  (sha256 {m.sha256[:16]}... verified)")
    print(f"kind       {m.kind}  precision {m.precision}  built for {m.device}  output_layer {m.output_layer}")
    print(f"runs on    {runner.device} via {runner.provider}")
    for axis in ("batch", "frames", "height", "width"):
        r = getattr(p, axis)
        print(f"{axis:<10} {r.min}..{r.max} (opt {r.opt})")
    t = p.token_range
    print(f"tokens     {t.min}..{t.max} (opt {t.opt})  hidden {runner.hidden_size}")
    return 0


def run_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime run", description=COMMANDS["run"][1])
    parser.add_argument("artifact")
    parser.add_argument("--pixel-values", required=True, help="(B, 3, T, H, W) or (B, 3, H, W) .npy")
    parser.add_argument("--positions", required=True, help="(B, L, 3) int64/int32 .npy")
    parser.add_argument("--out", required=True, help="output .npy (B, L, hidden)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: the artifact's own)")
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from . import load

    try:
        runner = load(args.artifact, device=args.device)
        pv, pos = np.load(args.pixel_values), np.load(args.positions)
        start = time.perf_counter()
        out = runner(pv, pos)
        elapsed = time.perf_counter() - start
    except _errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = out.detach().to("cpu")
    if out.dtype == torch.bfloat16:
        out = out.float()  # numpy has no bfloat16; exact
    np.save(args.out, out.numpy())
    print(
        f"{runner.kind} {runner.precision} via {runner.provider} on {runner.device}: {tuple(out.shape)} in "
        f"{elapsed * 1e3:.1f} ms -> {args.out}"
    )
    return 0


def _resolve(spec: str) -> Callable[[list[str]], int]:
    module, _, func = spec.partition(":")
    command: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return command


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<6} {help_}" for name, (_, help_) in COMMANDS.items()]
        text = "usage: python -m runtime COMMAND [ARGS]  (COMMAND --help for details)\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown command {argv[0]!r}\n{text}", file=sys.stderr)
            return 2
        print(text)
        return 0 if argv else 2
    return _resolve(COMMANDS[argv[0]][0])(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
