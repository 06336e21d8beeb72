"""Checkpoint directories: loading through transformers, and one clear error for every bad directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel

from models import CheckpointError, OneVisionEncoderModel, load_model, validate_checkpoint_dir
from models.checkpoint import file_sha256, weights_sha256
from models.synthetic import synthetic_state_dict, write_checkpoint
from tests.conftest import seeded


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_synthetic_layout_is_the_published_one(tiny_dir: Path) -> None:
    assert sorted(p.name for p in tiny_dir.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "onevision_encoder" and config["use_head"] is False
    assert "AutoModel" in config["auto_map"]
    weights = load_file(tiny_dir / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert "embeddings.patch_embedding.weight" in weights and "encoder.layers.2.mlp.fc2.bias" in weights
    # Norms are not left at their trivial init, so bugs in them show.
    assert not torch.allclose(weights["layernorm_pre.weight"].float(), torch.ones(128))
    assert weights["layernorm_pre.bias"].abs().max() > 0
    pre = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "CLIPImageProcessor" and pre["crop_size"] == {"height": 448, "width": 448}


def test_synthetic_weights_are_seeded(tiny_dir: Path) -> None:
    config = validate_checkpoint_dir(tiny_dir)
    a, b = synthetic_state_dict(config, 7), synthetic_state_dict(config, 7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layernorm_pre.weight"], synthetic_state_dict(config, 8)["layernorm_pre.weight"])


def test_synthetic_writer_never_overwrites(tiny_dir: Path) -> None:
    before = file_sha256(tiny_dir / "model.safetensors")
    with pytest.raises(FileExistsError, match="not empty"):
        write_checkpoint(tiny_dir, "tiny", seed=99)
    assert file_sha256(tiny_dir / "model.safetensors") == before


def test_auto_classes_load_without_remote_code(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = copy_dir(tiny_dir, tmp_path / "with-remote-code")
    # A published directory carries remote code; ours must never run it.
    trap = "raise RuntimeError('remote code was executed')\n"
    (ckpt / "modeling_onevision_encoder.py").write_text(trap)
    (ckpt / "configuration_onevision_encoder.py").write_text(trap)
    config = AutoConfig.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
    assert type(model) is OneVisionEncoderModel and config.model_type == "onevision_encoder"
    ref = load_model(tiny_dir, torch.float32, "eager")
    x = seeded(1, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x).last_hidden_state, ref(x).last_hidden_state)


def test_sha256_of_weights(tiny_dir: Path) -> None:
    assert weights_sha256(tiny_dir) == file_sha256(tiny_dir / "model.safetensors")


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        data = json.loads((d / "config.json").read_text())
        data.update(changes)
        (d / "config.json").write_text(json.dumps(data))

    return edit


def _drop_key(d: Path) -> None:
    weights = load_file(d / "model.safetensors")
    del weights["encoder.layers.1.self_attn.q_proj.bias"]
    weights["encoder.layers.1.self_attn.extra.weight"] = torch.zeros(2)
    save_file(weights, d / "model.safetensors")


def _truncate(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _pickle_only(d: Path) -> None:
    (d / "model.safetensors").rename(d / "pytorch_model.bin")


BAD_DIRS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing config": (lambda d: (d / "config.json").unlink(), "no config.json"),
    "config not json": (lambda d: (d / "config.json").write_text("{oops"), "not valid JSON"),
    "wrong model_type": (_edit_config(model_type="siglip_vision_model"), "model_type must be 'onevision_encoder'"),
    "head_dim/2 not divisible by 16": (_edit_config(hidden_size=96, num_attention_heads=2), "head_dim/2"),
    "hidden not divisible by heads": (_edit_config(num_attention_heads=3), "divisible by num_attention_heads"),
    "bad norm type": (_edit_config(layer_norm_type="batch_norm"), "layer_norm_type"),
    "use_head": (_edit_config(use_head=True), "lang variant only"),
    "missing weights": (lambda d: (d / "model.safetensors").unlink(), "no weights"),
    "pickle only": (_pickle_only, "safetensors only"),
    "truncated safetensors": (_truncate, "truncated safetensors"),
    "missing and unexpected keys": (_drop_key, "missing 1 key.*q_proj.bias.*unexpected 1 key.*extra.weight"),
    "wrong shapes": (_edit_config(intermediate_size=256), "wrong shape.*fc1"),
}


@pytest.mark.parametrize("case", sorted(BAD_DIRS))
def test_bad_directories_get_one_clear_error(tiny_dir: Path, tmp_path: Path, case: str) -> None:
    damage, message = BAD_DIRS[case]
    ckpt = copy_dir(tiny_dir, tmp_path / "bad")
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt)
    # from_pretrained itself validates local directories the same way.
    with pytest.raises(CheckpointError, match=message):
        OneVisionEncoderModel.from_pretrained(ckpt)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a directory"):
        validate_checkpoint_dir(tmp_path / "nowhere")


def test_bad_config_object_rejected() -> None:
    from models import OneVisionEncoderConfig

    with pytest.raises(CheckpointError, match="head_dim/2 must be divisible by 16"):
        OneVisionEncoderModel(OneVisionEncoderConfig(hidden_size=384, num_attention_heads=8))
