"""kind "onnx": an ONNX model run by onnxruntime.

Provider: the CUDA execution provider when onnxruntime has it and torch sees a GPU (or `device="cuda[:N]"` is
asked for), else the CPU provider. `runner.provider` is the provider the session actually uses
(`session.get_providers()[0]`). No silent fallback: onnxruntime quietly creates a CPU session when the CUDA provider
is not in this build or cannot be created (missing CUDA/cuDNN libraries), which with CUDA pointers bound would read
device memory from the host; `create_session` refuses both with one `LoadError`. On CUDA the session runs with
`use_tf32=0` (fp32 is fp32) and logs at warning level, so onnxruntime's line about nodes it placed on the CPU
("Some nodes were not assigned to the preferred execution providers ...") is shown, not hidden. A graph onnxruntime
has no kernel for on that provider (a bf16 ONNX: no bf16 Conv in the CPU or CUDA provider) is refused with
"not supported by onnxruntime".

Inputs and the output are exchanged through I/O binding on the runner's device: ONNX Runtime reads the torch input
tensors and writes into a preallocated torch output tensor in place, so on the GPU nothing makes a host round
trip (and bf16, which numpy lacks, needs no conversion). `InferenceSession.run_with_iobinding` is safe to call
from several threads; each thread keeps its own IOBinding (threading.local), so the runner takes no lock.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from contract.manifest import Manifest

from ..base import LoadError, NotRunnableHere, Runner

# torch dtype <-> ONNX TensorProto element type (what IOBinding.bind_input/bind_output accept as element_type).
ONNX_TYPES = {torch.float32: 1, torch.float16: 10, torch.bfloat16: 16, torch.int64: 7, torch.int32: 6}
ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(bfloat16)": torch.bfloat16}
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise NotRunnableHere(
            f"onnxruntime is not installed ({exc}); pip install onnxruntime (or onnxruntime-gpu)"
        ) from None
    return onnxruntime


class UnsupportedError(NotRunnableHere):
    """onnxruntime has no kernel for this graph on this provider (e.g. bf16 Conv): not a defect of the artifact."""


def _not_implemented(exc: Exception) -> bool:
    text = str(exc)
    return type(exc).__name__ == "NotImplemented" or "NOT_IMPLEMENTED" in text or "Could not find an implement" in text


def check_providers(session: Any, device: torch.device, path: object) -> str:
    """The provider the session uses; LoadError if CUDA was asked for and the session is not on it."""
    in_use = list(session.get_providers())
    if device.type == "cuda" and (not in_use or in_use[0] != CUDA_EP):
        raise LoadError(
            f"{path}: device {device} asked, but onnxruntime created the session on {in_use} ({CUDA_EP} could not be "
            "created: its CUDA/cuDNN libraries must match the installed onnxruntime-gpu); refusing to run on the "
            "CPU with CUDA tensors bound. Fix the CUDA provider or load with device='cpu'"
        )
    return str(in_use[0])


def create_session(path: object, device: torch.device, precision: str) -> Any:
    """An onnxruntime session on `device`'s provider, or one LoadError saying why not (never another provider).

    The bundle's one onnxruntime session setup: the runner, the ONNX builder's verification, parity's layer probe and
    the benchmarks' floor all open sessions here. `path`: a file path, or a serialized model (bytes)."""
    ort = _ort()
    model = path if isinstance(path, bytes) else str(path)
    if isinstance(path, bytes):
        path = "<in-memory ONNX model>"
    options = ort.SessionOptions()
    cuda = device.type == "cuda"
    # CUDA: warnings shown (node placement on the CPU is a warning); CPU: errors only (nothing to place elsewhere).
    options.log_severity_level = 2 if cuda else 3
    if cuda:
        available = ort.get_available_providers()
        if CUDA_EP not in available:  # a CPU-only build: not broken, just not built for CUDA
            raise NotRunnableHere(
                f"{path}: device {device} needs onnxruntime's {CUDA_EP}, but this onnxruntime "
                f"({ort.__version__}) has {available}; install onnxruntime-gpu or load with device='cpu'"
            )
        # use_tf32 defaults to on in the CUDA provider: an fp32 artifact computes in fp32 (models.tf32's rule).
        providers: list[Any] = [(CUDA_EP, {"device_id": str(int(device.index or 0)), "use_tf32": "0"})]
    else:
        providers = [CPU_EP]
    ep = CUDA_EP if cuda else CPU_EP
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # unparsable model, missing external data, no kernel, ...: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if _not_implemented(exc):
            raise UnsupportedError(
                f"{path}: {precision} ONNX on {ep}: not supported by onnxruntime {ort.__version__} ({first}); "
                "use another precision of this kind or another kind (pt2/aoti) for this precision"
            ) from None
        raise LoadError(f"{path}: onnxruntime cannot load it: {type(exc).__name__}: {first}") from None
    check_providers(session, device, path)
    return session


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
        self._session = create_session(self.path, self.device, self.precision)
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = self._session.get_outputs()
        declared = [str(i["name"]) for i in self.manifest.inputs]
        if inputs != declared or not outputs:
            raise LoadError(f"{self.path}: expected inputs {declared} and one output, got {inputs}")
        self._input_names = inputs
        self._output_name = outputs[0].name
        self._out_dtype = ORT_TYPES.get(outputs[0].type, self.dtype)
        hidden = outputs[0].shape[-1] if outputs[0].shape else None
        if self.hidden_size is None and not isinstance(hidden, int):
            raise LoadError(f"{self.path}: the output's last dimension is not static and the manifest does not give it")
        self.provider = check_providers(self._session, self.device, self.path)
        self._device_type = "cuda" if self.device.type == "cuda" else "cpu"
        self._device_id = int(self.device.index or 0) if self.device.type == "cuda" else 0
        self._local = threading.local()

    def computes_tf32(self) -> bool:
        return False  # create_session gives every CUDA session use_tf32=0, whatever torch's flags say

    def _binding(self) -> Any:
        binding = getattr(self._local, "binding", None)
        if binding is None:
            binding = self._session.io_binding()
            self._local.binding = binding
        return binding

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = torch.empty(self.output_shape(inputs), dtype=self._out_dtype, device=self.device)
        binding = self._binding()
        for name, tensor in zip(self._input_names, inputs, strict=True):
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
