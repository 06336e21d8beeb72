"""The encoder's numerics and contract (issue: foundation)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models import OneVisionEncoderConfig, OneVisionEncoderModel, load_model
from models.rope import rope_inv_freq
from tests.conftest import seeded


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def grid_positions(b: int, t: int, h: int, w: int) -> torch.Tensor:
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack((tt, hh, ww), -1).reshape(1, -1, 3).expand(b, -1, -1).contiguous()


@pytest.fixture(scope="module")
def fp32_sdpa(tiny_dir: Path) -> OneVisionEncoderModel:
    return load_model(tiny_dir, torch.float32, "sdpa")


def test_eager_equals_sdpa_fp32(tiny_dir: Path) -> None:
    x = seeded(2, 3, 2, 56, 84)
    eager = load_model(tiny_dir, torch.float32, "eager")
    sdpa = load_model(tiny_dir, torch.float32, "sdpa")
    with torch.no_grad():
        a, b = eager(x).last_hidden_state, sdpa(x).last_hidden_state
    assert a.shape == (2, 2 * 4 * 6, 128)
    assert rel_l2(a, b) < 1e-6
    assert (a - b).abs().max() < 1e-4


def test_runtime_attention_switch(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, torch.bfloat16, "sdpa")
    x = seeded(1, 3, 112, 112, dtype=torch.bfloat16)
    with torch.no_grad():
        sdpa = model(x).last_hidden_state
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(x).last_hidden_state
        model.set_attn_implementation("sdpa")
        again = model(x).last_hidden_state
    assert torch.equal(sdpa, again)
    # bf16 eager keeps the softmax in bf16, so it differs visibly from sdpa (but stays close).
    assert not torch.equal(sdpa, eager)
    assert rel_l2(eager, sdpa) < 0.05


def test_two_loads_bit_identical(tiny_dir: Path) -> None:
    x = seeded(1, 3, 4, 42, 42)
    outs = []
    for _ in range(2):
        model = load_model(tiny_dir, torch.float32, "eager")
        with torch.no_grad():
            outs.append(model(x).last_hidden_state)
    assert torch.equal(outs[0], outs[1])


def test_save_pretrained_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    model = load_model(tiny_dir, torch.bfloat16, "eager")
    model.save_pretrained(tmp_path / "saved")
    again = load_model(tmp_path / "saved", torch.bfloat16, "eager")
    x = seeded(2, 3, 56, 56, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(model(x).last_hidden_state, again(x).last_hidden_state)
    for (name, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(p, q), name


def test_sharded_checkpoint_loads(tiny_dir: Path, tmp_path: Path) -> None:
    from models.checkpoint import weight_files, weights_sha256

    model = load_model(tiny_dir, torch.bfloat16, "eager")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert len(weight_files(tmp_path / "sharded")) > 1
    again = load_model(tmp_path / "sharded", torch.bfloat16, "eager")
    x = seeded(1, 3, 28, 28, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(model(x).last_hidden_state, again(x).last_hidden_state)
    assert len(weights_sha256(tmp_path / "sharded")) == 64


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtype_preserved_and_rope_stays_fp32(tiny_dir: Path, dtype: torch.dtype) -> None:
    model = load_model(tiny_dir, dtype, "sdpa")
    assert {p.dtype for p in model.parameters()} == {dtype}
    exact = rope_inv_freq(10000.0, 8)
    assert model.video_rope.inv_freq_t.dtype == torch.float32
    assert torch.equal(model.video_rope.inv_freq_t, exact)
    with torch.no_grad():
        out = model(seeded(1, 3, 28, 56, dtype=dtype)).last_hidden_state
    assert out.dtype == dtype and torch.isfinite(out).all()


def test_to_bfloat16_does_not_degrade_rope(fp32_sdpa: OneVisionEncoderModel) -> None:
    model = OneVisionEncoderModel(fp32_sdpa.config)
    model.to(torch.bfloat16)
    for axis, n in (("t", 8), ("h", 12), ("w", 12)):
        buf = getattr(model.video_rope, f"inv_freq_{axis}")
        assert buf.dtype == torch.float32
        assert torch.equal(buf, rope_inv_freq(10000.0, n))
    model.half()
    assert model.video_rope.inv_freq_h.dtype == torch.float32


def test_rope_frequencies_match_the_formula(fp32_sdpa: OneVisionEncoderModel) -> None:
    pos = torch.tensor([[[63, 31, 5], [0, 0, 0], [7, 2, 40]]])
    freqs = fp32_sdpa.video_rope.forward_from_positions(pos)
    assert freqs.shape == (1, 3, 32) and freqs.dtype == torch.float32
    theta = 10000.0
    ref = []
    for t, h, w in pos[0].tolist():
        ref.append(
            [t * theta ** (-i / 8) for i in range(8)]
            + [h * theta ** (-i / 12) for i in range(12)]
            + [w * theta ** (-i / 12) for i in range(12)]
        )
    np.testing.assert_allclose(freqs[0].numpy(), np.array(ref), rtol=1e-6, atol=1e-6)
    grid = fp32_sdpa.video_rope(2, 3, 4)
    assert torch.equal(grid, fp32_sdpa.video_rope.forward_from_positions(grid_positions(1, 2, 3, 4))[0])


def test_interleaved_rotation_matches_the_spec() -> None:
    from models.rope import apply_rotary

    q = seeded(1, 1, 2, 64, seed=1)
    k = seeded(1, 1, 2, 64, seed=2)
    f32 = seeded(1, 2, 32, seed=3)
    freqs = torch.cat((f32, f32), -1)
    q2, k2 = apply_rotary(q, k, freqs)
    qd, fd = q.double().numpy()[0, 0], freqs.double().numpy()[0]
    rot = np.empty_like(qd)
    rot[:, 0::2], rot[:, 1::2] = -qd[:, 1::2], qd[:, 0::2]
    np.testing.assert_allclose(q2[0, 0].numpy(), qd * np.cos(fd) + rot * np.sin(fd), rtol=1e-5, atol=1e-5)
    assert not torch.equal(q2, q) and not torch.equal(k2, k)


def test_grid_equals_explicit_positions(fp32_sdpa: OneVisionEncoderModel) -> None:
    x = seeded(2, 3, 3, 42, 56)
    with torch.no_grad():
        grid = fp32_sdpa(x).last_hidden_state
        explicit = fp32_sdpa(x, patch_positions=grid_positions(2, 3, 3, 4)).last_hidden_state
    assert torch.equal(grid, explicit)


def test_image_grid_is_frame_zero(fp32_sdpa: OneVisionEncoderModel) -> None:
    x = seeded(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(fp32_sdpa(x).last_hidden_state, fp32_sdpa(x.unsqueeze(2)).last_hidden_state)


def test_visible_indices_equal_running_only_the_selected_patches(fp32_sdpa: OneVisionEncoderModel) -> None:
    t, hp, wp = 4, 3, 4
    x = seeded(2, 3, t, hp * 14, wp * 14)
    keep = torch.stack([torch.randperm(t * hp * wp, generator=torch.Generator().manual_seed(s))[:10] for s in (0, 1)])
    with torch.no_grad():
        dropped = fp32_sdpa(x, visible_indices=keep).last_hidden_state
    # The same patches laid out as one row (1 frame, 1 x 10 patches), each with its grid cell as its position.
    patches = x.permute(0, 2, 3, 4, 1).reshape(2, t, hp, 14, wp, 14, 3).permute(0, 1, 2, 4, 6, 3, 5)
    patches = patches.reshape(2, t * hp * wp, 3, 14, 14)
    rows = []
    for b in range(2):
        sel = patches[b, keep[b]]  # (10, 3, 14, 14)
        rows.append(sel.permute(1, 2, 0, 3).reshape(3, 14, 10 * 14))
    row = torch.stack(rows)
    cells = grid_positions(1, t, hp, wp)[0]
    positions = torch.stack([cells[keep[b]] for b in range(2)])
    with torch.no_grad():
        ref = fp32_sdpa(row, patch_positions=positions).last_hidden_state
    assert dropped.shape == (2, 10, 128)
    torch.testing.assert_close(dropped, ref, rtol=1e-5, atol=1e-5)
    # Dropped tokens really are gone: the kept tokens attend only to each other.
    with torch.no_grad():
        full = fp32_sdpa(x).last_hidden_state
    assert rel_l2(dropped[0], full[0, keep[0]]) > 1e-2


def test_positions_on_a_64_frame_timeline(fp32_sdpa: OneVisionEncoderModel) -> None:
    x = seeded(1, 3, 4, 28, 28)
    base = grid_positions(1, 4, 2, 2)
    stretched = base.clone()
    stretched[..., 0] = torch.tensor([0, 21, 42, 63]).repeat_interleave(4)
    with torch.no_grad():
        a = fp32_sdpa(x, patch_positions=base).last_hidden_state
        b = fp32_sdpa(x, patch_positions=stretched).last_hidden_state
    assert torch.isfinite(b).all()
    assert rel_l2(a, b) > 1e-2  # temporal positions matter
    # Frame 3 at t=63: its tokens' frequencies are exactly 63 * inv_freq_t, no wrap or clamp.
    freqs = fp32_sdpa.video_rope.forward_from_positions(stretched)
    assert torch.equal(freqs[0, -1, :8], 63.0 * fp32_sdpa.video_rope.inv_freq_t)


def test_one_patch_input(fp32_sdpa: OneVisionEncoderModel) -> None:
    with torch.no_grad():
        out = fp32_sdpa(seeded(1, 3, 14, 14)).last_hidden_state
    assert out.shape == (1, 1, 128) and torch.isfinite(out).all()


def test_gradients_reach_every_parameter(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, torch.float32, "sdpa").train()
    out = model(seeded(2, 3, 2, 28, 28)).last_hidden_state
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_penultimate_layer_is_hidden_state_minus_two(fp32_sdpa: OneVisionEncoderModel) -> None:
    x = seeded(1, 3, 28, 42)
    with torch.no_grad():
        full = fp32_sdpa(x, output_hidden_states=True)
        cut = fp32_sdpa(x, num_layers=fp32_sdpa.config.num_hidden_layers - 1).last_hidden_state
    assert len(full.hidden_states) == fp32_sdpa.config.num_hidden_layers + 1
    assert torch.equal(full.hidden_states[-1], full.last_hidden_state)
    assert torch.equal(full.hidden_states[-2], cut)
    assert full.pooler_output is None


def test_planted_rope_error_is_visible_in_bf16(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic weights are expressive: a wrong RoPE exponent (2i/d instead of i/n) moves the output far more
    than bf16 rounding does, so the parity suite's bf16 tolerances can see position bugs."""
    x = seeded(1, 3, 2, 56, 56)
    fp32 = load_model(tiny_dir, torch.float32, "sdpa")
    bf16 = load_model(tiny_dir, torch.bfloat16, "sdpa")
    with torch.no_grad():
        ref = fp32(x).last_hidden_state
        bf16_err = rel_l2(bf16(x.bfloat16()).last_hidden_state.float(), ref)
    import models.rope as rope

    monkeypatch.setattr(rope, "rope_inv_freq", lambda theta, n: 1.0 / theta ** (torch.arange(n) * 2.0 / 64))
    planted = OneVisionEncoderModel(fp32.config)
    planted.load_state_dict(fp32.state_dict())
    planted.eval()
    with torch.no_grad():
        planted_err = rel_l2(planted(x).last_hidden_state, ref)
    assert bf16_err < 0.02
    assert planted_err > 10 * bf16_err, (planted_err, bf16_err)


def test_attention_is_not_uniform(fp32_sdpa: OneVisionEncoderModel) -> None:
    """Guard on the synthetic init: attention logits span several units (entropy well below uniform)."""
    eager = OneVisionEncoderModel(fp32_sdpa.config)
    eager.load_state_dict(fp32_sdpa.state_dict())
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        attn = eager.eval()(seeded(1, 3, 112, 112), output_attentions=True).attentions
    probs = attn[0].clamp_min(1e-12)
    entropy = float(-(probs * probs.log()).sum(-1).mean())
    assert entropy < 0.8 * math.log(probs.shape[-1])


def test_config_defaults_are_the_published_ones() -> None:
    c = OneVisionEncoderConfig()
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads) == (1024, 4096, 24, 16)
    assert (c.patch_size, c.image_size, c.rope_theta, c.rope_temporal_size) == (14, 448, 10000.0, 64)
    assert (c.hidden_act, c.layer_norm_eps, c.layer_norm_type, c.use_head) == ("gelu", 1e-6, "layer_norm", False)


@contextlib.contextmanager
def layer_calls(model: OneVisionEncoderModel) -> Iterator[list[int]]:
    """Indices of the encoder layers that run inside the block (forward hooks, removed after)."""
    calls: list[int] = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, _o, i=i: calls.append(i))
        for i, layer in enumerate(model.encoder.layers)
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def test_forward_intermediates_is_forward_bit_for_bit(fp32_sdpa: OneVisionEncoderModel) -> None:
    """Every hidden state from `forward_intermediates` equals `forward(output_hidden_states=True)`'s, bit for bit,
    with the default grid and with explicit positions; `stop_early` returns the truncated forward's output."""
    x = seeded(2, 3, 2, 28, 42)
    pos = grid_positions(2, 2, 2, 3)
    n = fp32_sdpa.config.num_hidden_layers
    with torch.no_grad():
        for kwargs in ({}, {"patch_positions": pos}):
            full = fp32_sdpa(x, output_hidden_states=True, **kwargs)
            last, states = fp32_sdpa.forward_intermediates(x, **kwargs)
            assert len(states) == n + 1
            assert all(torch.equal(a, b) for a, b in zip(states, full.hidden_states, strict=True))
            assert torch.equal(last, full.last_hidden_state)
            cut = fp32_sdpa(x, num_layers=n - 1, **kwargs).last_hidden_state
            last, states = fp32_sdpa.forward_intermediates(x, indices=[-2], **kwargs)
            assert torch.equal(last, cut) and len(states) == 1 and torch.equal(states[0], cut)


def test_forward_intermediates_stop_early_skips_later_layers(fp32_sdpa: OneVisionEncoderModel) -> None:
    x = seeded(1, 3, 28, 28)
    with layer_calls(fp32_sdpa) as calls, torch.no_grad():
        full = fp32_sdpa(x, output_hidden_states=True)
        calls.clear()
        last, states = fp32_sdpa.forward_intermediates(x, indices=[0, 1])
        assert calls == [0]  # hidden state 1 is the first layer's output: nothing after it runs
        assert torch.equal(last, full.hidden_states[1])
        assert [torch.equal(s, full.hidden_states[i]) for i, s in enumerate(states)] == [True, True]
        calls.clear()
        last, states = fp32_sdpa.forward_intermediates(x, indices=[1], stop_early=False)
        assert calls == [0, 1, 2]
        assert torch.equal(last, full.last_hidden_state) and torch.equal(states[0], full.hidden_states[1])
        calls.clear()
        only = fp32_sdpa.forward_intermediates(x, indices=2, intermediates_only=True)  # the last two
        assert calls == [0, 1, 2] and isinstance(only, list) and len(only) == 2
        assert all(torch.equal(s, full.hidden_states[i]) for s, i in zip(only, (2, 3), strict=True))


def test_output_layer_rule_and_indices_errors(fp32_sdpa: OneVisionEncoderModel) -> None:
    from models import InputError, layers_for_output, take_indices

    assert [layers_for_output(k, 24) for k in (-1, -2, -24, 1, 23, 24)] == [24, 23, 1, 1, 23, 24]
    assert fp32_sdpa.layers_for_output(-2) == 2
    for bad in (0, 4, -4, True):
        with pytest.raises(InputError, match="output_layer must be"):
            fp32_sdpa.layers_for_output(bad)
    assert take_indices(3, None) == ([0, 1, 2, 3], 3)
    assert take_indices(3, 2) == ([2, 3], 3)
    assert take_indices(3, [-1, 0, 1, 1]) == ([0, 1, 3], 3)
    for bad_indices in (0, 5, [4], [-5], []):
        with pytest.raises(InputError, match="indices"):
            take_indices(3, bad_indices)


def test_eager_runner_is_the_model(tiny_dir: Path, fp32_sdpa: OneVisionEncoderModel) -> None:
    """The one eager runner: its output and hidden states are the model's own, bit for bit, and it computes fp32
    without TF32 exactly when asked (`exact_fp32`), leaving the caller's settings alone otherwise."""
    from models.eager import EagerRunner

    x, pos = seeded(1, 3, 2, 28, 28), grid_positions(1, 2, 2, 2)
    runner = EagerRunner(fp32_sdpa, num_layers=2)
    with torch.no_grad():
        full = fp32_sdpa(x, patch_positions=pos, output_hidden_states=True)
    assert torch.equal(runner(x, pos), full.hidden_states[2])
    assert torch.equal(runner(x, pos, num_layers=3), full.last_hidden_state)
    states = runner.hidden_states(x, pos)
    assert len(states) == 3 and all(torch.equal(a, b) for a, b in zip(states, full.hidden_states, strict=False))

    seen: list[str] = []
    hook = fp32_sdpa.encoder.layers[0].register_forward_hook(
        lambda *_: seen.append(torch.get_float32_matmul_precision())
    )
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        runner(x, pos)
        EagerRunner(fp32_sdpa, exact_fp32=False)(x, pos)
    finally:
        torch.set_float32_matmul_precision(before)
        hook.remove()
    assert seen == ["highest", "high"]
    loaded = EagerRunner.load(tiny_dir, "bf16", num_layers=1)
    assert loaded.dtype == torch.bfloat16 and loaded(x, pos).shape == (1, 8, 128) and loaded.num_layers == 1
