"""Dense peak TFLOP/s per GPU model and precision: what MFU divides by, for the GPU and precision actually timed.

Figures are NVIDIA's datasheet numbers **without sparsity** (datasheets print tensor-core figures "with sparsity",
marked *, which are twice the dense ones; the dense figure is that number halved where the datasheet gives only the
sparse one). Keys: "bf16"/"fp16" = tensor-core dense with fp32 accumulation (what PyTorch, cuBLAS and
onnxruntime use), "tf32" = tensor-core TF32 dense (fp32 with TF32 allowed), "fp32" = plain fp32 on the CUDA cores
(fp32 without TF32: what `models.tf32.exact_float32()` computes). Sources:
- H100 SXM5 / PCIe / NVL: NVIDIA H100 Tensor Core GPU datasheet (FP32 67 / 51 / 60; TF32 989* / 756* / 835*;
  BF16 and FP16 1,979* / 1,513* / 1,671*).
- H200 SXM / NVL: NVIDIA H200 Tensor Core GPU datasheet (FP32 67 / 60; TF32 989* / 835*; BF16, FP16 1,979* / 1,671*).
- A100 40/80 GB, SXM and PCIe: NVIDIA A100 datasheet (FP32 19.5; TF32 156; BF16, FP16 312; dense figures given).
- L40S: NVIDIA L40S datasheet (FP32 91.6; TF32 183; BF16, FP16 362.05; dense figures given).
- L4: NVIDIA L4 datasheet (FP32 30.3; TF32 120*; BF16, FP16 242*).
- A10: NVIDIA A10 datasheet (FP32 31.2; TF32 62.5; BF16, FP16 125; dense figures given).
- GeForce RTX 4090: NVIDIA Ada Lovelace architecture whitepaper, appendix table (FP32 82.6; TF32 82.6;
  BF16 and FP16 with FP32 accumulate 165.2: GeForce tensor cores run FP32 accumulation at half the FP16-accumulate
  rate).
- GeForce RTX 3090: NVIDIA Ampere GA102 whitepaper (FP32 35.6; TF32 35.6; BF16/FP16 with FP32 accumulate 71).
A GPU not matched below gets no MFU (the report says so) rather than a ratio to another GPU's peak.
"""

from __future__ import annotations

import re

# GPU model -> precision -> dense peak TFLOP/s (see the module docstring for each figure's source).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "H200 SXM": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "RTX 4090": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
    "RTX 3090": {"fp32": 35.6, "tf32": 35.6, "bf16": 71.0, "fp16": 71.0},
}

# torch.cuda.get_device_name() -> model, first match wins (e.g. "NVIDIA H100 80GB HBM3" is the SXM5 board,
# "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090").
_MODELS: tuple[tuple[str, str], ...] = (
    (r"\bH100\b.*\bNVL\b", "H100 NVL"),
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe"),
    (r"\bH100\b.*(\bSXM|\bHBM3\b)", "H100 SXM"),
    (r"\bH200\b.*\bNVL\b", "H200 NVL"),
    (r"\bH200\b", "H200 SXM"),
    (r"\bA100\b", "A100"),
    (r"\bL40S\b", "L40S"),
    (r"\bL4\b", "L4"),
    (r"\bA10\b", "A10"),
    (r"\bRTX 4090\b(?! D)", "RTX 4090"),
    (r"\bRTX 3090\b(?! Ti)", "RTX 3090"),
)


def gpu_model(device_name: str) -> str | None:
    """The table's model for a CUDA device name, or None when the bundle has no datasheet figure for it."""
    for pattern, model in _MODELS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return model
    return None


def peak_key(precision: str, tf32: bool) -> str:
    """The peak that bounds `precision`: fp32 with TF32 allowed is bounded by the TF32 tensor-core peak."""
    if precision == "fp32":
        return "tf32" if tf32 else "fp32"
    return precision


def peak_tflops(device_name: str, precision: str, tf32: bool) -> tuple[float | None, str]:
    """(dense peak TFLOP/s or None, a note saying which figure it is or why there is none)."""
    model = gpu_model(device_name)
    if model is None:
        return None, f"MFU not reported: no datasheet peak for GPU {device_name!r} (benchmarks/peaks.py)"
    key = peak_key(precision, tf32)
    peak = PEAK_TFLOPS[model].get(key)
    if peak is None:
        return None, f"MFU not reported: no {key} peak for {model}"
    return peak, f"{model} dense {key} peak {peak:g} TFLOP/s"
