"""Synthetic checkpoints in the exact published layout, with seeded *expressive* random weights.

Real weights cannot be downloaded here, so every command defaults to a checkpoint this module writes, file for file
what OneVision-Encoder-large-lang publishes: `config.json` (the published keys only, with `auto_map`,
`"_attn_implementation": "flash_attention_2"` and `transformers_version` "4.57.3"), bf16 `model.safetensors`,
`preprocessor_config.json`, the remote code `auto_map` names (the bundle's own implementation from
models/remote_code/, not upstream's) and a `README.md` model card, which records that the weights are synthetic
(preset, seed).

The usual 0.02-std init makes attention nearly uniform, so a wrong RoPE frequency barely changes the output.
These weights are scaled so attention logits span several units (q/k std sqrt(LOGIT_STD / hidden)), and norm
weights/biases are perturbed away from 1/0, so position, rotation and norm bugs are visible under bf16 tolerances.

    python -m models.synthetic --preset tiny --out checkpoints/synthetic-tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .checkpoint import SINGLE_FILE
from .configuration import OneVisionEncoderConfig
from .modeling import expected_shapes

PRESETS: dict[str, dict[str, Any]] = {
    # The published OneVision-Encoder-large-lang architecture (ViT-L/14, 448 px).
    "full": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    # Tests: head_dim stays 64 so the 8/12/12 RoPE split is the real one.
    "tiny": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=2),
}
DEFAULT_DIRS = {name: Path("checkpoints") / f"synthetic-{name}" for name in PRESETS}
DEFAULT_SEED = 1234
# config.json as published: written by transformers 4.57.3 (5.7.0 in the "-tf57" variant), FlashAttention-2 by default.
PUBLISHED_TRANSFORMERS_VERSIONS = ("4.57.3", "5.7.0")
PUBLISHED_ATTENTION = "flash_attention_2"
REMOTE_CODE_DIR = Path(__file__).parent / "remote_code"
REMOTE_CODE_FILES = ("configuration_onevision_encoder.py", "modeling_onevision_encoder.py")
LOGIT_STD = 3.0  # target std of the attention logits q.k/sqrt(head_dim) for unit-variance inputs

# transformers' generic PretrainedConfig fields that the published config.json does not carry.
_GENERIC_KEYS = {
    "_name_or_path",
    "id2label",
    "label2id",
    "chunk_size_feed_forward",
    "problem_type",
    "is_encoder_decoder",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def preprocessor_config(size: int) -> dict[str, Any]:
    """The published CLIPImageProcessor settings (shortest edge = centre crop = image size)."""
    return {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }


def make_config(preset: str) -> OneVisionEncoderConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    config = OneVisionEncoderConfig(**PRESETS[preset])
    config.architectures = ["OneVisionEncoderModel"]
    config.auto_map = {
        "AutoConfig": "configuration_onevision_encoder.OneVisionEncoderConfig",
        "AutoModel": "modeling_onevision_encoder.OneVisionEncoderModel",
    }
    return config


def _std(name: str, shape: tuple[int, ...], config: OneVisionEncoderConfig) -> tuple[float, float]:
    """(std, mean) of the synthetic init for one tensor."""
    d, ff = config.hidden_size, config.intermediate_size
    leaf = name.rsplit(".", 2)[-2:]
    if name.endswith("patch_embedding.weight"):
        return 1.0 / math.sqrt(math.prod(shape[1:])), 0.0
    if "norm" in leaf[0]:
        return (0.1, 1.0) if leaf[1] == "weight" else (0.05, 0.0)
    if leaf[1] == "bias":
        return 0.02, 0.0
    if leaf[0] in ("q_proj", "k_proj"):
        return math.sqrt(LOGIT_STD / d), 0.0
    if leaf[0] == "fc2":
        return 0.5 / math.sqrt(ff), 0.0
    if leaf[0] == "out_proj":
        return 0.5 / math.sqrt(d), 0.0
    return 1.0 / math.sqrt(d), 0.0


def synthetic_state_dict(config: OneVisionEncoderConfig, seed: int = DEFAULT_SEED) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in sorted(expected_shapes(config).items()):
        std, mean = _std(name, shape, config)
        value = torch.randn(shape, generator=generator, dtype=torch.float32) * std + mean
        tensors[name] = value.to(torch.bfloat16).contiguous()
    return tensors


def config_json(config: OneVisionEncoderConfig, transformers_version: str = PUBLISHED_TRANSFORMERS_VERSIONS[0]) -> str:
    """config.json text with exactly the published keys (sorted, 2-space indent, as save_pretrained writes it)."""
    data = {k: v for k, v in config.to_dict().items() if k not in _GENERIC_KEYS}
    data["dtype"] = "bfloat16"
    data["transformers_version"] = transformers_version
    data["_attn_implementation"] = PUBLISHED_ATTENTION
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def model_card(preset: str, seed: int, config: OneVisionEncoderConfig) -> str:
    """README.md of a synthetic checkpoint: where it came from (published repos carry a model card here too)."""
    return (
        "---\nlicense: apache-2.0\n---\n\n"
        f"# Synthetic OneVision-Encoder-large-lang checkpoint (preset `{preset}`, seed {seed})\n\n"
        "**Not trained weights.** Written by `python -m models.synthetic` of the OneVision encoder deployment bundle: "
        "the published file layout with seeded random weights scaled so that RoPE, attention and norm bugs show.\n\n"
        f"- hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, "
        f"patch {config.patch_size}, image {config.image_size}\n"
        f"- regenerate: `python -m models.synthetic --preset {preset} --seed {seed}`\n"
        "- `configuration_onevision_encoder.py` / `modeling_onevision_encoder.py`: the bundle's own independent "
        "implementation (models/remote_code/), not upstream's code\n"
    )


def write_checkpoint(
    out: str | os.PathLike[str],
    preset: str = "tiny",
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    transformers_version: str = PUBLISHED_TRANSFORMERS_VERSIONS[0],
) -> Path:
    """Write a synthetic checkpoint directory; refuses to touch a non-empty directory unless `overwrite`."""
    root = Path(out)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} exists and is not empty; pass --overwrite to replace its checkpoint files")
    config = make_config(preset)
    root.mkdir(parents=True, exist_ok=True)
    save_file(synthetic_state_dict(config, seed), str(root / SINGLE_FILE), metadata={"format": "pt"})
    (root / "config.json").write_text(config_json(config, transformers_version))
    (root / "preprocessor_config.json").write_text(
        json.dumps(preprocessor_config(config.image_size), indent=2, sort_keys=True) + "\n"
    )
    for name in REMOTE_CODE_FILES:
        shutil.copyfile(REMOTE_CODE_DIR / name, root / name)
    (root / "README.md").write_text(model_card(preset, seed, config))
    return root


def ensure_default(preset: str) -> Path:
    """The embedded default checkpoint of a preset, written on first use."""
    root = DEFAULT_DIRS[preset]
    if not (root / SINGLE_FILE).is_file():
        print(f"writing synthetic {preset} checkpoint to {root} (seed {DEFAULT_SEED})", file=sys.stderr)
        write_checkpoint(root, preset, overwrite=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", type=Path, help="directory to write (default: checkpoints/synthetic-<preset>)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing directory")
    parser.add_argument(
        "--transformers-version",
        choices=PUBLISHED_TRANSFORMERS_VERSIONS,
        default=PUBLISHED_TRANSFORMERS_VERSIONS[0],
        help="config.json's transformers_version: the upstream repository's or its '-tf57' variant's",
    )
    args = parser.parse_args(argv)
    out = args.out or DEFAULT_DIRS[args.preset]
    try:
        root = write_checkpoint(out, args.preset, args.seed, args.overwrite, args.transformers_version)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in root.iterdir()) / 2**20
    print(f"wrote {args.preset} synthetic checkpoint to {root} ({size:.1f} MiB, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
