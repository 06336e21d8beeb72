"""Errors raised for bad checkpoints and bad inputs: one clear line each, never a deep backend trace."""


class CheckpointError(ValueError):
    """A checkpoint directory or its config cannot be used; the message names what is wrong."""


class InputError(ValueError):
    """An input does not satisfy the model's contract; the message names the input, expected and actual value."""
