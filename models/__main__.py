"""`python -m models [--model DIR] [--preset full|tiny]`: load a checkpoint and encode one 448² image (a smoke run)."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from contract.dtypes import DTYPES

from . import CheckpointError, load_model, weights_sha256
from .synthetic import PRESETS, ensure_default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    parser.add_argument("--model", help="checkpoint directory (default: the synthetic checkpoint of --preset)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    args = parser.parse_args(argv)
    model_dir = args.model or str(ensure_default(args.preset))
    dtype = DTYPES[args.dtype]
    try:
        model = load_model(model_dir, dtype=dtype)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = model.config.image_size
    pixels = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(dtype)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(pixels).last_hidden_state
    elapsed = time.perf_counter() - start
    print(f"checkpoint  {model_dir}  (weights sha256 {weights_sha256(model_dir)[:16]}...)")
    print(f"input       {tuple(pixels.shape)} {args.dtype}")
    print(
        f"output      last_hidden_state {tuple(out.shape)}  mean {out.float().mean():+.4f}  std {out.float().std():.4f}"
    )
    print(f"time        {elapsed:.2f} s (eager sdpa, CPU, {torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
