"""Runtime: one loader for every artifact kind, input validation, position helpers (and the C++ runner in cpp/).

import runtime

runner = runtime.load("artifacts/aoti-fp32-image-448.pt2")  # manifest and sha256 checked first
out = runner(pixel_values, patch_positions)  # (B, L, hidden) on runner.device
"""

from contract.errors import InputError, ManifestError

from .base import LoadError, NotRunnableHere, Runner
from .loader import BACKENDS, load, runner_class
from .positions import codec_pack, frame_timeline, grid_positions, image_positions, top_patches, video_positions
from .validation import check_inputs

__all__ = [
    "BACKENDS",
    "InputError",
    "LoadError",
    "ManifestError",
    "NotRunnableHere",
    "Runner",
    "check_inputs",
    "codec_pack",
    "frame_timeline",
    "grid_positions",
    "image_positions",
    "load",
    "runner_class",
    "top_patches",
    "video_positions",
]
