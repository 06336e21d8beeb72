"""The artifact's signature, declared once (as optimum's OnnxConfig declares inputs and dynamic axes):

    pixel_values (B, 3, T, H, W) float, patch_positions (B, L, 3) int64 -> last_hidden_state (B, L, hidden)

`DYNAMIC_AXES` names the axes a profile may leave dynamic, with the symbol manifests give them (an axis a profile
fixes is written as its size): batch B, frames T, height H, width W (pixels) and tokens L = T * (H/p) * (W/p).
"""

INPUT_NAMES = ("pixel_values", "patch_positions")
OUTPUT_NAMES = ("last_hidden_state",)
# Name -> {axis: symbol}: the axes a profile may leave dynamic (every other axis is fixed: channels 3, [t, h, w] 3,
# hidden size). ONNX dim names, torch.export Dims and manifest shapes all read this.
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "pixel_values": {0: "batch", 2: "frames", 3: "height", 4: "width"},
    "patch_positions": {0: "batch", 1: "tokens"},
    "last_hidden_state": {0: "batch", 1: "tokens"},
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
