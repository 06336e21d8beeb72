"""Precision names (CLI flags, manifests, reports) and their torch dtypes: defined once for every stage."""

import torch

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
