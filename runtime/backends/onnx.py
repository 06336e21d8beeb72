"""kind "onnx": an ONNX model run by onnxruntime.

Provider: the CUDA execution provider when onnxruntime has it and torch sees a GPU (or `device="cuda[:N]"` is
asked for; refused if either is missing), else the CPU provider. `runner.provider` names the one in use.

Inputs and the output are exchanged through I/O binding on the runner's device: ONNX Runtime reads the torch input
tensors and writes into a preallocated torch output tensor in place, so on the GPU nothing makes a host round
trip (and bf16, which numpy lacks, needs no conversion). `InferenceSession.run_with_iobinding` is safe to call
from several threads; each thread keeps its own IOBinding (threading.local), so the runner takes no lock.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from export.manifest import Manifest
from export.wrapper import INPUT_NAMES

from ..base import LoadError, Runner

# torch dtype <-> ONNX TensorProto element type (what IOBinding.bind_input/bind_output accept as element_type).
ONNX_TYPES = {torch.float32: 1, torch.float16: 10, torch.bfloat16: 16, torch.int64: 7}
ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(bfloat16)": torch.bfloat16}
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise LoadError(f"onnxruntime is not installed ({exc}); pip install onnxruntime (or onnxruntime-gpu)") from None
    return onnxruntime


def cuda_provider_available() -> bool:
    try:
        return CUDA_EP in _ort().get_available_providers() and torch.cuda.is_available()
    except LoadError:
        return False


class OnnxRunner(Runner):
    kind = "onnx"
    thread_safe = True

    @classmethod
    def default_device(cls, manifest: Manifest) -> str:
        return "cuda" if cuda_provider_available() else "cpu"

    def _load(self) -> None:
        ort = _ort()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node fallback chatter
        if self.device.type == "cuda":
            if CUDA_EP not in ort.get_available_providers():
                raise LoadError(
                    f"{self.path}: device {self.device} needs onnxruntime's {CUDA_EP}, but this onnxruntime has "
                    f"{ort.get_available_providers()}; install onnxruntime-gpu or load with device='cpu'"
                )
            providers: list[Any] = [(CUDA_EP, {"device_id": int(self.device.index or 0)})]
        else:
            providers = [CPU_EP]
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # unparsable model, missing external data, ...: one line
            raise LoadError(f"{self.path}: onnxruntime cannot load it: {type(exc).__name__}: {exc}") from None
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = self._session.get_outputs()
        if inputs != list(INPUT_NAMES) or not outputs:
            raise LoadError(f"{self.path}: expected inputs {list(INPUT_NAMES)} and one output, got {inputs}")
        self._output_name = outputs[0].name
        self._out_dtype = ORT_TYPES.get(outputs[0].type, self.dtype)
        hidden = outputs[0].shape[-1] if outputs[0].shape else None
        size = int(hidden) if isinstance(hidden, int) else self.hidden_size
        if size is None:
            raise LoadError(f"{self.path}: the output's last dimension is not static and the manifest does not give it")
        self._hidden_dim: int = size
        self.provider = self._session.get_providers()[0]
        self._device_type = "cuda" if self.device.type == "cuda" else "cpu"
        self._device_id = int(self.device.index or 0) if self.device.type == "cuda" else 0
        self._local = threading.local()

    def _binding(self) -> Any:
        binding = getattr(self._local, "binding", None)
        if binding is None:
            binding = self._session.io_binding()
            self._local.binding = binding
        return binding

    def _run(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        b, n = patch_positions.shape[:2]
        out = torch.empty((b, n, self._hidden_dim), dtype=self._out_dtype, device=self.device)
        binding = self._binding()
        for name, tensor in zip(INPUT_NAMES, (pixel_values, patch_positions)):
            binding.bind_input(
                name,
                self._device_type,
                self._device_id,
                ONNX_TYPES[tensor.dtype],
                list(tensor.shape),
                tensor.data_ptr(),
            )
        binding.bind_output(
            self._output_name,
            self._device_type,
            self._device_id,
            ONNX_TYPES[out.dtype],
            list(out.shape),
            out.data_ptr(),
        )
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch are complete
        try:
            self._session.run_with_iobinding(binding)
            binding.synchronize_outputs()
        finally:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
        return out
