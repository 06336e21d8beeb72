"""The Triton Python-backend model (`model.py` in a generated repository): any artifact through `runtime.load`.

`execute` gets the requests Triton's dynamic batcher merged: of equal shapes for a batched artifact, of any shapes
for a packed one (its config's inputs are ragged), which are packed into as few calls as its profile allows
(serving/batching.py).

Config parameters (config.pbtxt `parameters`):
- `artifact`: the artifact file, relative to the version folder (or absolute); its manifest lies beside it.
- `device` (optional): "cpu" or "cuda:N" for a KIND_CPU instance; a KIND_GPU instance runs on its own GPU.
- `bundle_root` (optional): a folder put first on sys.path so that `runtime` and `serving` import (the launcher
  sets PYTHONPATH instead).

Tensors cross the backend boundary through DLPack, never through the backend's numpy bridge: the backend is built
against numpy 1.x and, under this environment's numpy 2.x, `as_numpy()` misreads input buffers and
`pb_utils.Tensor(name, ndarray)` sends 0 bytes (both seen here with Triton 2.51 from nvidia-pytriton 0.7.0).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if params.get("bundle_root"):
            sys.path.insert(0, params["bundle_root"])
        import runtime
        from serving.batching import run_requests

        self._run_requests = run_requests
        self._input_error = runtime.InputError
        folder = os.path.join(args["model_repository"], args["model_version"])
        artifact = os.path.join(folder, params["artifact"])
        device = params.get("device") or None
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        self.runner = runtime.load(artifact, device=device)
        pb_utils.Logger.log_info(f"onevision_encoder: {self.runner!r}")

    def execute(self, requests: list[Any]) -> list[Any]:
        inputs = [(_input(r, "pixel_values"), _input(r, "patch_positions")) for r in requests]
        responses = []
        for result in self._run_requests(self.runner, inputs):
            if isinstance(result, self._input_error):  # the client's input: HTTP 400, gRPC INVALID_ARGUMENT
                error = pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
            elif isinstance(result, Exception):  # the server's failure: HTTP 500, gRPC INTERNAL
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(result))))
            else:
                tensor = pb_utils.Tensor.from_dlpack("last_hidden_state", torch.from_numpy(result))
                responses.append(pb_utils.InferenceResponse([tensor]))
        return responses

    def finalize(self) -> None:
        self.runner.close()


def _input(request: Any, name: str) -> Any:
    """An input as a numpy array (DLPack -> torch -> numpy). numpy keeps the runtime's wire rules: float32 pixel
    values into a bf16 artifact are rounded to bfloat16 by `runtime.validation`, int32 positions widen losslessly."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return torch.from_dlpack(tensor.to_dlpack()).numpy()
