"""The OneVision encoder (lang variant) and its checkpoints. Data flows models -> export -> runtime -> parity."""

from transformers import AutoConfig, AutoModel

from contract.errors import CheckpointError, InputError

from .checkpoint import load_config, weights_sha256
from .configuration import MODEL_TYPE, OneVisionEncoderConfig
from .modeling import (
    OneVisionEncoderModel,
    OneVisionEncoderPreTrainedModel,
    expected_shapes,
    layers_for_output,
    load_model,
    take_indices,
    validate_checkpoint_dir,
)

AutoConfig.register(MODEL_TYPE, OneVisionEncoderConfig, exist_ok=True)
AutoModel.register(OneVisionEncoderConfig, OneVisionEncoderModel, exist_ok=True)

__all__ = [
    "CheckpointError",
    "InputError",
    "OneVisionEncoderConfig",
    "OneVisionEncoderModel",
    "OneVisionEncoderPreTrainedModel",
    "expected_shapes",
    "layers_for_output",
    "load_config",
    "load_model",
    "take_indices",
    "validate_checkpoint_dir",
    "weights_sha256",
]
