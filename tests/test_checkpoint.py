"""Checkpoint directories: loading through transformers, and one clear error for every bad directory."""

from __future__ import annotations

import ast
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, PreTrainedModel

from contract.manifest import file_sha256
from models import CheckpointError, OneVisionEncoderModel, load_model, validate_checkpoint_dir
from models import attention as attention_rules
from models.checkpoint import weights_sha256
from models.synthetic import synthetic_state_dict, write_checkpoint
from tests.conftest import seeded

# The keys of OneVision-Encoder-large-lang's published config.json (upstream's save_pretrained under transformers
# 4.57.3 writes all but the last two; the published file adds auto_map and FlashAttention-2 as its default).
PUBLISHED_KEYS = {
    "architectures", "attention_dropout", "dtype", "hidden_act", "hidden_size", "image_size", "initializer_range",
    "intermediate_size", "layer_norm_eps", "layer_norm_type", "model_type", "num_attention_heads", "num_channels",
    "num_hidden_layers", "patch_size", "rope_temporal_size", "rope_theta", "transformers_version", "use_head",
    "auto_map", "_attn_implementation",
}  # fmt: skip


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_synthetic_layout_is_the_published_one(tiny_dir: Path) -> None:
    assert sorted(p.name for p in tiny_dir.iterdir()) == [
        "README.md",
        "config.json",
        "configuration_onevision_encoder.py",
        "model.safetensors",
        "modeling_onevision_encoder.py",
        "preprocessor_config.json",
    ]
    config = json.loads((tiny_dir / "config.json").read_text())
    assert set(config) == PUBLISHED_KEYS  # nothing else (the provenance is in README.md)
    assert config["model_type"] == "onevision_encoder" and config["use_head"] is False
    assert config["_attn_implementation"] == "flash_attention_2" and config["transformers_version"] == "4.57.3"
    assert config["dtype"] == "bfloat16" and "AutoModel" in config["auto_map"]
    card = (tiny_dir / "README.md").read_text()
    assert "preset `tiny`, seed 1234" in card and "Not trained weights" in card
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


# -- attention: the config's FlashAttention-2, an explicit choice, and the sdpa fallback ----------------------------


def _published_variant(src: Path, dst: Path, version: str, attn_key: str | None, dtype_key: str) -> Path:
    """A copy of a synthetic checkpoint with config.json as one of the published writers would leave it."""
    ckpt = copy_dir(src, dst)
    data = json.loads((ckpt / "config.json").read_text())
    requested = data.pop("_attn_implementation", "flash_attention_2")
    data[dtype_key] = data.pop("dtype")
    data["transformers_version"] = version
    if attn_key is not None:
        data[attn_key] = requested
    (ckpt / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    return ckpt


def _fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == attention_rules.__name__]


@pytest.fixture(scope="module")
def eager_reference(tiny_dir: Path) -> torch.Tensor:
    with torch.no_grad():
        return load_model(tiny_dir, torch.float32, "eager")(seeded(1, 3, 2, 28, 42)).last_hidden_state


@pytest.mark.parametrize("dtype_key", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("attn_key", ["_attn_implementation", "attn_implementation", None])
@pytest.mark.parametrize("version", ["4.57.3", "5.7.0"])
def test_published_configs_load(
    tiny_dir: Path,
    tmp_path: Path,
    eager_reference: torch.Tensor,
    caplog: pytest.LogCaptureFixture,
    version: str,
    attn_key: str | None,
    dtype_key: str,
) -> None:
    ckpt = _published_variant(tiny_dir, tmp_path / "ckpt", version, attn_key, dtype_key)
    caplog.set_level(logging.WARNING)
    # An explicit choice wins over the config's FlashAttention-2, through every entry point, and warns nothing.
    model = OneVisionEncoderModel.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
    auto = AutoModel.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
    assert model.config._attn_implementation == auto.config._attn_implementation == "eager"
    assert AutoConfig.from_pretrained(ckpt, attn_implementation="eager")._attn_implementation == "eager"
    assert load_model(ckpt, torch.float32, "eager").config._attn_implementation == "eager"
    with torch.no_grad():
        assert torch.equal(model(seeded(1, 3, 2, 28, 42)).last_hidden_state, eager_reference)
    assert _fallback_lines(caplog) == []
    # No explicit choice: the config's FlashAttention-2 cannot run on this machine -> sdpa and one warning line.
    default = OneVisionEncoderModel.from_pretrained(ckpt, dtype=torch.float32)
    assert default.config._attn_implementation == "sdpa"
    lines = _fallback_lines(caplog)
    if attn_key is None:
        assert lines == []
    else:
        assert len(lines) == 1 and "flash_attention_2" in lines[0] and "'sdpa'" in lines[0]
        assert "\n" not in lines[0]


def test_auto_model_without_choice_falls_back_once(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    if attention_rules.unavailable_reason("flash_attention_2") is None:
        pytest.skip("flash-attn and a CUDA GPU are present: the config's FlashAttention-2 runs here")
    caplog.set_level(logging.WARNING)
    model = AutoModel.from_pretrained(tiny_dir, dtype=torch.float32)
    assert type(model) is OneVisionEncoderModel and model.config._attn_implementation == "sdpa"
    (line,) = _fallback_lines(caplog)
    assert "not installed" in line and "no CUDA GPU" in line


def test_explicit_impossible_choice_is_an_error_not_a_fallback(tiny_dir: Path) -> None:
    if attention_rules.unavailable_reason("flash_attention_2") is None:
        pytest.skip("flash-attn and a CUDA GPU are present: an explicit FlashAttention-2 load would succeed")
    with pytest.raises(ImportError, match="FlashAttention2"):
        OneVisionEncoderModel.from_pretrained(tiny_dir, attn_implementation="flash_attention_2")


def test_fallback_decision(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """FlashAttention runs only with both the package and a CUDA GPU; anything else from a config becomes sdpa."""
    caplog.set_level(logging.WARNING)
    for installed, cuda, why in ((True, False, "no CUDA GPU"), (False, True, "not installed")):
        monkeypatch.setattr(attention_rules, "flash_attn_installed", lambda version, ok=installed: ok)
        monkeypatch.setattr(attention_rules, "cuda_available", lambda ok=cuda: ok)
        assert attention_rules.config_choice("flash_attention_2") == "sdpa"
        assert why in _fallback_lines(caplog)[-1]
    monkeypatch.setattr(attention_rules, "flash_attn_installed", lambda version: True)
    monkeypatch.setattr(attention_rules, "cuda_available", lambda: True)
    assert attention_rules.config_choice("flash_attention_2") == "flash_attention_2"
    assert attention_rules.config_choice("eager") == "eager"
    assert attention_rules.config_choice("kernels-community/unknown") == "sdpa"


def test_validation_never_instantiates_attention(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ckpt = copy_dir(tiny_dir, tmp_path / "ckpt")
    seen: list[str | None] = []
    original = PreTrainedModel._check_and_adjust_attn_implementation

    def spy(self: PreTrainedModel, implementation: str | None, *args: object, **kwargs: object) -> str:
        seen.append(implementation)
        return original(self, implementation, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PreTrainedModel, "_check_and_adjust_attn_implementation", spy)
    caplog.set_level(logging.WARNING)
    for requested in ("flash_attention_2", "flash_attention_3", "kernels-community/flash-attn2", "no-such-attention"):
        _edit_config(_attn_implementation=requested)(ckpt)
        assert validate_checkpoint_dir(ckpt).hidden_size == 128
    assert set(seen) == {"eager"}  # the model's own code path: no backend looked up, imported or checked
    assert _fallback_lines(caplog) == []


def test_sha256_of_weights(tiny_dir: Path) -> None:
    assert weights_sha256(tiny_dir) == file_sha256(tiny_dir / "model.safetensors")


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        data = json.loads((d / "config.json").read_text())
        data.update(changes)
        (d / "config.json").write_text(json.dumps(data))

    return edit


def _drop_config_key(key: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        data = json.loads((d / "config.json").read_text())
        del data[key]
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
    # A key the file omits means upstream's class default (patch 16, pooling head), not this bundle's lang defaults.
    "patch_size omitted (upstream default 16)": (
        _drop_config_key("patch_size"),
        r"patch_embedding.weight: expected.*16, 16",
    ),
    "use_head omitted (upstream default true)": (_drop_config_key("use_head"), "lang variant only"),
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


def test_models_package_has_no_import_cycle() -> None:
    """Every import statement counts, including lazy ones inside functions (checkpoint <-> modeling was one)."""
    root = Path(__file__).parent.parent / "models"
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level == 1:
                    deps.add(target.split(".")[0] if target else "")
                    deps.update(a.name for a in node.names if not target)
                elif target.startswith("models."):
                    deps.add(target.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("models."))
        graph[path.stem] = deps & {p.stem for p in root.glob("*.py")}
    assert "modeling" not in graph["checkpoint"] and "checkpoint" in graph["modeling"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph.get(start, ()))

    cycles = sorted(m for m in graph if m != "__init__" and reaches(m, m, {m}))
    assert cycles == [], f"import cycles through {cycles}"
