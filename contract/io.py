"""The artifact's signature, declared once (as optimum's OnnxConfig declares inputs and dynamic axes):

    pixel_values (B, 3, T, H, W) float, patch_positions (B, L, 3) int64 -> last_hidden_state (B, L, hidden)

`SIGNATURE` gives every axis of every input and output: a symbol (the name manifests, ONNX dims and torch.export Dims
give it) or a fixed size. The symbols in `DYNAMIC` are the axes a profile may leave dynamic (an axis a profile fixes
is written as its size): batch B, frames T, height H, width W (pixels) and tokens L = T * (H/p) * (W/p); "hidden" is
the checkpoint's hidden size, fixed by its config.
"""

CHANNELS = 3  # RGB
SIGNATURE: dict[str, tuple[str | int, ...]] = {
    "pixel_values": ("batch", CHANNELS, "frames", "height", "width"),
    "patch_positions": ("batch", "tokens", 3),  # [t, h, w] per token
    "last_hidden_state": ("batch", "tokens", "hidden"),
}
INPUT_NAMES = ("pixel_values", "patch_positions")
OUTPUT_NAMES = ("last_hidden_state",)
DYNAMIC = ("batch", "frames", "height", "width", "tokens")
# Name -> {axis: symbol}: the axes of SIGNATURE a profile may leave dynamic.
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    name: {axis: s for axis, s in enumerate(shape) if isinstance(s, str) and s in DYNAMIC}
    for name, shape in SIGNATURE.items()
}

# The published checkpoint's patch_size and rope_temporal_size: the defaults only where no config is at hand (a
# profile's patch, the media helpers' timeline); everything that has a checkpoint or manifest reads its own.
PATCH = 14
TIMELINE = 64

# The packed signature (contract/packing.py), its two layouts ("rows": torch artifacts; "flat": ONNX graphs and what is
# built from them), symbols for the manifest ("patch" stands for C*p*p, "hidden" for the hidden size).
PACKED_INPUT_NAMES = ("pixel_patches", "patch_positions", "cu_seqlens")
PACKED_AXES: dict[str, dict[str, tuple[str | int, ...]]] = {
    "rows": {
        "pixel_patches": ("tokens", "patch"),
        "patch_positions": ("tokens", 3),
        "cu_seqlens": ("offsets",),  # B + 1
        "last_hidden_state": ("tokens", "hidden"),
    },
    "flat": {
        "pixel_patches": ("patch_values",),  # N * C * p * p
        "patch_positions": ("position_values",),  # N * 3
        "cu_seqlens": ("offsets",),
        "last_hidden_state": ("tokens", "hidden"),
    },
}
