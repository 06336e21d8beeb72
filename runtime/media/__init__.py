"""Real inputs: image files, video files and codec-style patch selections -> (pixel_values, patch_positions).

One module per job; this package re-exports the public names, so `from runtime.media import ...` is the API.

| module      | holds                                                                                           |
|-------------|-------------------------------------------------------------------------------------------------|
| `inputs`    | `MediaError` (an `InputError`), `MediaInputs`, the file checks every reader does first          |
| `processor` | the checkpoint's image processor (transformers, imported lazily) and the resizing policy        |
| `images`    | image files (Pillow, EXIF orientation) -> (1, 3, 1, H, W) and grid positions                    |
| `video`     | video files (PyAV): frame counting, uniform sampling, timeline placement -> (1, 3, T, H, W)     |
| `codec`     | codec-style selection: residual scores, keyframe rule, packing into canvases                    |
| `selection` | precomputed [t, h, w] selections (.npy / .json) and their checks                                |
| `dispatch`  | `media_kind` (image or video) and `load_inputs` (any file, any mode)                            |

Every failure is one `MediaError` line: missing or unreadable files, files that are neither images nor videos,
videos without a video stream or without decodable frames, clips shorter than the frames asked for, native-mode
images under one patch, budgets that do not fill whole canvases.

transformers does the pixel work (the checkpoint's `AutoImageProcessor`: resize, crop, RGB conversion,
normalisation); its file loaders `image_utils.load_image` and `video_utils.load_video` are not used: the docstrings
of `images` and `video` give the measured reasons.
"""

from .codec import codec_inputs, residual_scores
from .dispatch import MODES, load_inputs, media_kind
from .images import image_inputs, read_image
from .inputs import ImageTooLarge, MediaError, MediaInputs
from .processor import PREPROCESSOR_FILE, crop_size, load_processor, native_size, preprocess
from .selection import load_selection, selection_mask
from .video import count_frames, read_video, sample_indices, video_inputs

__all__ = [
    "MODES",
    "PREPROCESSOR_FILE",
    "ImageTooLarge",
    "MediaError",
    "MediaInputs",
    "codec_inputs",
    "count_frames",
    "crop_size",
    "image_inputs",
    "load_inputs",
    "load_processor",
    "load_selection",
    "media_kind",
    "native_size",
    "preprocess",
    "read_image",
    "read_video",
    "residual_scores",
    "sample_indices",
    "selection_mask",
    "video_inputs",
]
