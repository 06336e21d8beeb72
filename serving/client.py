"""Client side: one `infer` over tritonclient's HTTP or gRPC API, and the example that embeds an image file.

    python -m serving embed tests/media/some.png --url 127.0.0.1:8000 --protocol http --preprocessor CKPT_DIR

The image is preprocessed on the client exactly as `runtime embed` does (runtime.media: the checkpoint's
preprocessor_config.json, crop mode, grid positions), sent as pixel_values/patch_positions, and last_hidden_state
comes back as numpy. Wire dtypes come from the server's model metadata (FP32/FP16, or BF16 as ml_dtypes.bfloat16).

A native packed model (`onnxruntime_onnx` / `tensorrt_plan` for a packed artifact: serving/model_config.py) takes one
item's `pixel_patches` (1, L, C*p*p) instead of its pixel_values; `infer` sees that in the model metadata and sends
the patches (`packed_request`), so callers pass pixel_values (1, 3, T, H, W) to every model.
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from . import MODEL_NAME, OUTPUT, PACKED_INPUTS

PROTOCOLS = ("http", "grpc")


def numpy_dtype(triton_dtype: str) -> Any:
    if triton_dtype == "BF16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    from tritonclient.utils import triton_to_np_dtype

    return triton_to_np_dtype(triton_dtype)


def host_of(url: str) -> str:
    return urlsplit(url if "//" in url else f"//{url}").hostname or ""


def packed_request(pixel_values: np.ndarray, patch_positions: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """One item (pixel_values (1, C, T, H, W), patch_positions (1, L, 3)) as a native packed model's request:
    pixel_patches (1, L, width = C*p*p), each patch a row in token order (contract.packing.flatten_patches' layout),
    and the positions as they are."""
    b, c, t, h, w = pixel_values.shape
    patch = math.isqrt(width // c)
    if c * patch * patch != width or h % patch or w % patch:
        raise ValueError(f"pixel_values {pixel_values.shape} cannot be cut into patches of {width} values")
    grid = pixel_values.reshape(b, c, t, h // patch, patch, w // patch, patch)
    patches = grid.transpose(0, 2, 3, 5, 1, 4, 6).reshape(b, -1, width)
    return {PACKED_INPUTS[0]: np.ascontiguousarray(patches), PACKED_INPUTS[1]: patch_positions}


class EncoderClient:
    """A tritonclient HTTP or gRPC client for the encoder model (one per thread: tritonclient's are not shared)."""

    def __init__(self, url: str, protocol: str = "http", model: str = MODEL_NAME, timeout_s: float = 60.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.model = model
        self.timeout_s = timeout_s
        if protocol == "http":
            import tritonclient.http as module

            self.client: Any = module.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            import tritonclient.grpc as module

            self.client = module.InferenceServerClient(url)
        self.module: Any = module
        self._types: dict[str, str] | None = None
        self._shapes: dict[str, list[int]] = {}

    def input_types(self) -> dict[str, str]:
        """Input name -> Triton datatype, from the server's model metadata."""
        if self._types is None:
            meta = self.client.get_model_metadata(self.model)
            inputs = (
                meta["inputs"]
                if isinstance(meta, dict)
                else [{"name": i.name, "datatype": i.datatype, "shape": list(i.shape)} for i in meta.inputs]
            )
            self._types = {i["name"]: i["datatype"] for i in inputs}
            self._shapes = {i["name"]: [int(d) for d in i.get("shape", [])] for i in inputs}
        return self._types

    @property
    def native_packed(self) -> bool:
        """The model takes pixel_patches (a native packed model), not pixel_values."""
        return PACKED_INPUTS[0] in self.input_types() and "pixel_values" not in self.input_types()

    def infer(
        self, pixel_values: np.ndarray, patch_positions: np.ndarray, datatypes: dict[str, str] | None = None
    ) -> np.ndarray:
        """last_hidden_state for one request; `datatypes` overrides the wire types (tests send wrong ones)."""
        types = datatypes or self.input_types()
        arrays = {"pixel_values": pixel_values, "patch_positions": patch_positions}
        if self.native_packed:
            types = {**types, PACKED_INPUTS[0]: types.get("pixel_values", types[PACKED_INPUTS[0]])}
            arrays = packed_request(pixel_values, patch_positions, self._shapes[PACKED_INPUTS[0]][-1])
        inputs = []
        for name, array in arrays.items():
            tensor = self.module.InferInput(name, list(array.shape), types[name])
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(tensor)
        outputs = [self.module.InferRequestedOutput(OUTPUT)]
        if self.protocol == "http":
            result = self.client.infer(self.model, inputs, outputs=outputs)
        else:
            result = self.client.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout_s)
        return np.asarray(result.as_numpy(OUTPUT))

    def ready(self) -> bool:
        return bool(self.client.is_server_ready() and self.client.is_model_ready(self.model))

    def close(self) -> None:
        self.client.close()


def embed_image(
    path: str | os.PathLike[str],
    client: EncoderClient,
    preprocessor: str | os.PathLike[str],
    size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel_values, patch_positions, last_hidden_state) of an image file, embedded through the server."""
    import torch

    from runtime.media import image_inputs, load_processor

    media = image_inputs(path, load_processor(preprocessor), mode="crop", size=size)
    wire = numpy_dtype(client.input_types()["pixel_values"])
    pixels = media.pixel_values.to(torch.float32).numpy().astype(wire)
    positions = media.patch_positions.numpy().astype(np.int64)
    return pixels, positions, client.infer(pixels, positions)
