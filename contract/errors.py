"""The errors a user sees: one clear line each (what is wrong, expected vs got), never a deep backend trace.

Every stage raises these; they live in the contract so that a runtime can catch them without importing the stage
that raised them.
"""


class CheckpointError(ValueError):
    """A checkpoint directory or its config cannot be used; the message names what is wrong."""


class InputError(ValueError):
    """An input does not satisfy the model's contract; the message names the input, expected and actual value."""


class ManifestError(ValueError):
    """A manifest is missing, unreadable, or does not match its artifact."""


class ProfileError(ValueError):
    """A shape profile is impossible (min > max, H not a multiple of the patch size, ...)."""
