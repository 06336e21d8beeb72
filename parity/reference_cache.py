"""References kept on disk between runs (`--reference-cache DIR`, default `<results-dir>/reference-cache`): a
reference is computed once per checkpoint, code, input, layer count, torch version and device, then read back by every
later run and every artifact.

Key: sha256 of the input tensors' bytes, the number of layers, the reference's name, the code that computes it (the
bundle's models/*.py, the checkpoint's config.json and any modeling code it ships, which the remote reference runs),
the torch version and the device (for CUDA the GPU's name; for the CPU the vector ISA ATen dispatches to, since AVX2
and AVX-512 kernels round differently), under a folder named after the checkpoint's weights sha256. A file that
does not read back is computed again (and replaced).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .cases import CaseInput

MODELS = Path(__file__).resolve().parents[1] / "models"


def code_sha256(model_dir: Path) -> str:
    """sha256 of what a reference's numbers depend on besides weights and input: the bundle's modeling code, the
    checkpoint's config and the modeling code it ships."""
    digest = hashlib.sha256()
    files = [*sorted(MODELS.glob("*.py")), Path(model_dir) / "config.json", *sorted(Path(model_dir).glob("*.py"))]
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def device_context(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.backends.cpu.get_cpu_capability()}"


class ReferenceCache:
    def __init__(
        self, folder: Path, weights_sha256: str, device: torch.device, model_dir: Path, fp32_gemm: bool = False
    ) -> None:
        self.folder = Path(folder) / weights_sha256[:16]
        self.context = {"torch": torch.__version__, "device": device_context(device), "code": code_sha256(model_dir)}
        self.fp32_gemm = fp32_gemm  # bf16/fp16 references with fp32 GEMMs are entries of their own
        self._inputs: dict[str, str] = {}  # case.key -> sha256 of its tensors
        self.hits = 0

    def _input_hash(self, case: CaseInput) -> str:
        if case.key not in self._inputs:
            digest = hashlib.sha256()
            for tensor in (case.pixel_values, case.patch_positions):
                digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._inputs[case.key] = digest.hexdigest()
        return self._inputs[case.key]

    def _path(self, case: CaseInput, layers: int, name: str) -> Path:
        data = {"input": self._input_hash(case), "layers": layers, "reference": name, **self.context}
        if self.fp32_gemm and name.endswith(("-bf16", "-fp16")):
            data["gemm"] = "fp32"
        key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]
        return self.folder / f"{case.name}-{name}-{key}.safetensors"

    def get(self, case: CaseInput, layers: int, name: str) -> torch.Tensor | None:
        path = self._path(case, layers, name)
        if not path.is_file():
            return None
        try:
            tensor = load_file(str(path))["last_hidden_state"]
        except (SafetensorError, OSError, KeyError):
            return None
        self.hits += 1
        return tensor

    def put(self, case: CaseInput, layers: int, name: str, output: torch.Tensor) -> None:
        """Written atomically (a concurrent run never reads half a file)."""
        path = self._path(case, layers, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"last_hidden_state": output.contiguous()}, tmp, metadata={"case": case.key, "reference": name})
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
