"""Dtypes, defined once for every stage: precision names (CLI flags, manifests, reports) and wire names.

- `DTYPES`: precision name -> torch dtype ("fp32", "bf16", "fp16").
- `DTYPE_NAMES`: torch dtype -> the name manifests, validation messages and serving configs use ("float32", ...).
- `TRITON_TYPES`: that name -> Triton's model-config data type (model_config.proto `DataType`).

Backend-specific tables (onnxruntime's element types, TensorRT's and OpenVINO's type names) stay in their backend.
"""

import torch

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
    torch.int64: "int64",
    torch.int32: "int32",
}
TRITON_TYPES: dict[str, str] = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
}
