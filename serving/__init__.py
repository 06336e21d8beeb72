"""Serving: the encoder behind NVIDIA Triton Inference Server (model `onevision_encoder`).

- `python -m serving serve`: starts the Triton 2.51 server that ships in the `nvidia-pytriton` wheel, with one
  Python-backend model that runs any artifact `runtime.load` opens (launcher.py, triton_model.py).
- `python -m serving repository`: writes a model repository for a full Triton deployment (`onnxruntime_onnx`,
  `tensorrt_plan`, `pytorch_libtorch`, or the Python backend for the kinds Triton cannot run itself) (repository.py,
  model_config.py).
- `python -m serving embed`: the client example (client.py); `python -m serving.load`: the load generator (load.py).

The serving layer uses the runtime's public API only (`runtime.load`, `Runner`, `runtime.validation`); everything
it reads from an artifact's manifest goes through artifacts.py.
"""

from contract.io import INPUT_NAMES, OUTPUT_NAMES, PACKED_INPUT_NAMES

MODEL_NAME = "onevision_encoder"
INPUTS = INPUT_NAMES  # what a request carries (batched, or one item of a packed artifact): contract.io.SIGNATURE
OUTPUT = OUTPUT_NAMES[0]
PACKED_INPUTS = PACKED_INPUT_NAMES[:2]  # a native packed model's request (contract/packing.py)...
BATCH_INPUT = PACKED_INPUT_NAMES[2]  # ...and what Triton adds to a batch of them (model_config.py)
