"""Packed batches (issue 18) on the tiny checkpoint with `packed-test-small`: the model's two packed attention modes,
the runtime's packed calls and what they refuse, item isolation in every CPU kind, and the parity of packed artifacts
(every item of every packed case against its own eager reference, fp32 and bf16; a planted defect localised in the
call its item ran in). The packed artifacts come from one session fixture (`tiny_packed_fp32`, conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

import runtime
from contract.errors import InputError
from contract.manifest import read_manifest
from contract.packing import pack, unpack
from contract.profiles import PACKED_PROFILES
from export import BuildRequest, build
from export.inputs import packed_items
from models import load_config, load_model, weights_sha256
from models.metrics import compare
from models.packing import MODES
from models.tf32 import exact_float32
from parity import PACKED_CASES, CaseContext, PackedCase, build_packed_case
from parity.artifacts import from_file
from parity.localise import make_probe, packed_subject
from parity.references import GOLDEN, ReferenceBank
from runtime.base import Runner
from runtime.positions import grid_positions
from tests.conftest import PACKED_CPU_KINDS, Available, run_cli, seeded

PROFILE = PACKED_PROFILES["packed-test-small"]
PATCH = PROFILE.patch
FP32_ROUNDING = 1e-5  # rel L2 of two fp32 computations of the same item in other kernel shapes (measured ~1e-7)
PLANTED_LAYER = 1


Items = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(scope="module")
def mix_case() -> PackedCase:
    """The packed-mix case fitted to packed-test-small: images of three aspect ratios, a 2-frame video, a codec
    selection and the profile's 1-token smallest item (385 tokens)."""
    case = build_packed_case("packed-mix", CaseContext(PROFILE, min_tokens=1))
    assert isinstance(case, PackedCase)
    return case


@pytest.fixture(scope="module")
def mix(mix_case: PackedCase) -> Items:
    return [(item.pixel_values, item.patch_positions) for item in mix_case.items]


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


@pytest.fixture(scope="module")
def runners(tiny_packed_fp32: Available[Path]) -> Iterator[Callable[[str], Runner]]:
    """kind -> its packed fp32 runner, loaded once for the module (a pt2 program takes seconds to load)."""
    loaded: dict[str, Runner] = {}

    def get(kind: str) -> Runner:
        if kind not in loaded:
            loaded[kind] = runtime.load(tiny_packed_fp32[kind])
        return loaded[kind]

    yield get
    for runner in loaded.values():
        runner.close()


# --- the model: mask and padded attention, offsets in tokens or position elements ---------------------------------


def test_mask_and_padded_attention_equal_the_items_run_alone(tiny_dir: Path, mix: Items) -> None:
    """Both packed attention modes give each item what it gets run alone (fp32 rounding), and the offsets counted in
    position elements (x3, Triton's BATCH_ACCUMULATED_ELEMENT_COUNT over flat positions) give the same output."""
    model = load_model(tiny_dir, torch.float32, "sdpa")
    patches, positions, cu = pack(mix, PATCH)
    assert [int(v) for v in cu] == [0, 64, 96, 128, 256, 384, 385]
    with torch.no_grad(), exact_float32():
        alone = [model(pv, patch_positions=pos).last_hidden_state for pv, pos in mix]
        for mode in MODES:
            out = model.forward_packed(patches, positions, cu, attention=mode)
            assert out.shape == (385, model.config.hidden_size)
            for i, (got, want) in enumerate(zip(unpack(out, cu), alone, strict=True)):
                assert compare(got, want).rel_l2 < FP32_ROUNDING, (mode, i)
            flat = model.forward_packed(patches.reshape(-1), positions.reshape(-1), cu * 3, attention=mode)
            assert torch.equal(flat, out), mode


# --- the runtime: refusals, one line each ---------------------------------------------------------------------------


def test_a_call_over_the_budget_is_refused_and_run_packed_splits_it(
    tiny_dir: Path, runners: Callable[[str], Runner]
) -> None:
    runner = runners("pt2")
    items = packed_items([(4, 112, 112)] * 4 + [(1, 14, 28)], torch.float32, PATCH, seed=3)  # 4 x 256 + 2 tokens
    with pytest.raises(InputError) as exc:
        runner.run_packed_call(*pack(items, PATCH))
    assert "1026 tokens in one call, outside profile 'packed-test-small''s range [2, 1024]" in one_line(exc)

    plans = runner.plan_packed(items)
    assert len(plans) > 1, [call for call, _ in plans]
    assert sorted(i for call, _ in plans for i in call) == [0, 1, 2, 3, 4]
    assert all(int(inputs[2][-1]) <= PROFILE.call_tokens.max for _, inputs in plans)
    outputs = runner.run_packed(items)
    for call, inputs in plans:  # run_packed is exactly those calls ...
        for i, out in zip(call, unpack(runner.run_packed_call(*inputs), inputs[2]), strict=True):
            assert torch.equal(outputs[i], out)
    model = load_model(tiny_dir, torch.float32, "sdpa")
    with torch.no_grad(), exact_float32():  # ... and each item gets what it gets alone
        for (pv, pos), out in zip(items, outputs, strict=True):
            assert compare(out, model(pv, patch_positions=pos).last_hidden_state).rel_l2 < FP32_ROUNDING


@pytest.mark.parametrize("kind", ["pt2", "onnx"])
def test_a_call_below_the_minimum_is_topped_up_and_the_item_unchanged(
    tiny_dir: Path, runners: Callable[[str], Runner], kind: str
) -> None:
    """A lone 1-token item (14x14) is a call of N = 1, below the profile's minimum of 2 a call (what a TensorRT
    engine's profile refuses): the plan tops the call up with a filler item after it, and the item's output is what
    it gets alone. (Before, the call went to the backend at N = 1.)"""
    runner = runners(kind)
    item = packed_items([(1, PATCH, PATCH)], torch.float32, PATCH, seed=5)
    ((call, inputs),) = runner.plan_packed(item)
    assert call == [0] and [int(v) for v in inputs[2]] == [0, 1, PROFILE.call_tokens.min]
    runner.run_packed_call(*inputs)  # the call as planned is one the profile accepts
    (out,) = runner.run_packed(item)
    model = load_model(tiny_dir, torch.float32, "sdpa")
    with torch.no_grad(), exact_float32():
        alone = model(item[0][0], patch_positions=item[0][1]).last_hidden_state
    assert out.shape == (1, 1, model.config.hidden_size)
    assert compare(out, alone).rel_l2 < FP32_ROUNDING


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("not-increasing", "cu_seqlens: expected strictly increasing offsets"),
        ("wrong-total", "cu_seqlens: expected the last offset to be N = 385"),
        ("not-from-0", "cu_seqlens: expected 0, L_1, L_1+L_2, ..., N (B+1 offsets from 0), got [1,"),
    ],
)
def test_bad_offsets_are_refused(runners: Callable[[str], Runner], mix: Items, damage: str, says: str) -> None:
    runner = runners("pt2")
    patches, positions, cu = pack(mix, PATCH)
    bad = cu.clone()
    if damage == "not-increasing":
        bad[2] = bad[1]  # an item of no tokens
    elif damage == "wrong-total":
        bad[-1] += 1  # N + 1
    else:
        bad[0] = 1
    with pytest.raises(InputError) as exc:
        runner.run_packed_call(patches, positions, bad)
    assert says in one_line(exc)
    assert runner.run_packed_call(patches, positions, cu).shape == (385, 128)  # the same call with its offsets runs


def test_a_bad_item_is_refused_by_its_index_before_anything_runs(
    runners: Callable[[str], Runner], mix: Items, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = runners("pt2")
    ran: list[int] = []
    real = runner.run_prepared

    def counted(*inputs: torch.Tensor) -> torch.Tensor:
        ran.append(int(inputs[2].numel()) - 1)
        return real(*inputs)

    monkeypatch.setattr(runner, "run_prepared", counted)
    five_frames = (seeded(1, 3, 5, 28, 28), grid_positions(1, 5, 2, 2))  # the profile takes 1..4 frames
    short = (mix[1][0], mix[1][1][:, :-1])  # one position missing
    wrong_dtype = (mix[0][0].double(), mix[0][1])
    for items, index, says in [
        ([*mix[:3], five_frames, *mix[3:]], 3, "frames 5 outside profile 'packed-test-small' range [1, 4]"),
        ([mix[0], short, five_frames], 1, "patch_positions: expected L = T*(H/14)*(W/14) = 1*4*8 = 32 rows, got 31"),
        ([*mix, wrong_dtype], 6, "pixel_values: expected dtype float32"),
    ]:
        with pytest.raises(InputError) as exc:
            runner.run_packed(items)
        text = one_line(exc)
        assert text.startswith(f"item {index}: ") and says in text, text
    assert ran == []  # refused before any call
    assert len(runner.run_packed(mix)) == 6 and ran  # the same runner runs the good list


def test_batched_and_packed_artifacts_refuse_each_others_calls(
    tiny_artifacts_fp32: Available[Path], runners: Callable[[str], Runner], mix: Items
) -> None:
    batched = runtime.load(tiny_artifacts_fp32["pt2"])
    with pytest.raises(InputError) as exc:
        batched.run_packed(mix)
    assert "is a batched artifact (profile 'test-small'): packed calls need one exported with a packed profile" in (
        one_line(exc)
    )
    with pytest.raises(InputError) as exc:
        batched.run_packed_call(*pack(mix, PATCH))
    one_line(exc)
    with pytest.raises(InputError) as exc:
        runners("pt2")(*mix[0])
    assert "is a packed artifact (profile 'packed-test-small'): call run_packed(items)" in one_line(exc)


# --- isolation: an item's pixels change its own rows only ---------------------------------------------------------


@pytest.mark.parametrize("kind", PACKED_CPU_KINDS)
def test_changing_one_item_leaves_the_others_bit_identical(
    kind: str, runners: Callable[[str], Runner], mix: Items
) -> None:
    runner = runners(kind)
    plans = [call for call, _ in runner.plan_packed(mix)]
    shared = max(plans, key=len)
    assert len(shared) >= 3, plans  # several items in one call: what isolation is about
    k = shared[-1]
    before = runner.run_packed(mix)
    changed = list(mix)
    changed[k] = (mix[k][0] + seeded(*mix[k][0].shape, seed=11), mix[k][1])
    assert [call for call, _ in runner.plan_packed(changed)] == plans  # the same calls, other pixels
    after = runner.run_packed(changed)
    assert not torch.equal(before[k], after[k])
    for i in range(len(mix)):
        if i != k:
            assert torch.equal(before[i], after[i]), f"{kind}: item {i} changed when item {k}'s pixels did"


# --- parity of packed artifacts -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One reference cache for the module's suite runs: the items' references are computed once."""
    return tmp_path_factory.mktemp("packed-reference-cache")


@pytest.fixture(scope="module")
def packed_bf16(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """bf16 packed artifacts of the cheap kinds: pt2 (~7 s) and TorchScript (~2 s). AOTInductor and OpenVINO bf16
    were run by hand (README "Packed parity")."""
    out = tmp_path_factory.mktemp("tiny-packed-bf16")
    request = BuildRequest(tiny_dir, "bf16", [PROFILE], out, options={"quiet": True})
    return [build(kind, request).path for kind in ("pt2", "torchscript")]


def test_every_item_of_every_packed_case_passes_against_its_own_reference(
    tiny_dir: Path, tiny_packed_fp32: Available[Path], packed_bf16: list[Path], reference_cache: Path, tmp_path: Path
) -> None:
    """`python -m parity` with its default cases on packed artifacts: every kind in fp32 and pt2/TorchScript in
    bf16, every item of every packed case, every reference: pass."""
    paths = [*tiny_packed_fp32.values(), *packed_bf16]
    code, report, out = run_cli(
        "--model", tiny_dir, "--artifacts", ",".join(map(str, paths)), "--artifacts-dir", tmp_path / "none",
        "--references", "sdpa-fp32,sdpa-bf16", "--reference-cache", reference_cache, "--results-dir", tmp_path,
        "--name", "packed",
    )  # fmt: skip
    assert code == 0, "\n".join(r["reason"] for r in report["results"] if r["status"] in ("fail", "error"))
    arts = {a["name"]: a for a in report["artifacts"]}
    assert set(arts) == {p.name for p in paths}
    assert {a["status"] for a in arts.values()} == {"PASS"}
    assert {a["profile"] for a in arts.values()} == {"packed-test-small"}
    cases = {c["case"]: c for c in report["packed_cases"]}
    assert set(cases) == set(PACKED_CASES)
    assert [len(cases[c]["items"]) for c in PACKED_CASES] == [6, 3, 2]
    assert cases["packed-mix"]["items"][-1].startswith("packed-mix[5]@1x1x14x14#")  # the smallest item: 1 token
    assert cases["packed-extremes"]["items"][1].startswith("packed-extremes[1]@1x4x112x112#")  # the largest
    rows = {(r["artifact"], r["case"], r["reference"]): r for r in report["results"]}
    references = ["golden-fp64", "sdpa-fp32", "sdpa-bf16"]
    for art in arts:
        for name, case in cases.items():
            calls = case["calls"][art]  # the runtime's plan: every item in exactly one call
            assert sorted(i for call in calls for i in call) == list(range(len(case["items"]))), calls
            for i in range(len(case["items"])):
                for ref in references:
                    assert rows[(art, f"{name}[{i}]", ref)]["status"] == "pass", (art, name, i, ref)
    assert len(rows) == len(arts) * 11 * len(references)  # nothing else: no skipped or error rows
    md = (out / "report.md").read_text()
    assert "## Packed cases" in md and "| `pt2-bf16-packed-test-small.pt2` | packed-mix[5] | 1x1x14x14 |" in md


@pytest.fixture(scope="module")
def planted_packed_pt2(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packed pt2 built from the tiny checkpoint with one weight of encoder.layers.1 off by 1% of its std."""
    folder = tmp_path_factory.mktemp("planted-packed")
    ckpt = folder / "tiny"
    shutil.copytree(tiny_dir, ckpt)
    tensors = load_file(str(ckpt / "model.safetensors"))
    name = f"encoder.layers.{PLANTED_LAYER}.mlp.fc2.weight"
    w = tensors[name].float()
    tensors[name] = (w + seeded(*w.shape, seed=7) * w.std() * 0.01).to(tensors[name].dtype)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    return build("pt2", BuildRequest(ckpt, "fp32", [PROFILE], folder / "arts", options={"quiet": True})).path


def test_a_planted_defect_is_localised_in_the_call_of_its_item(
    tiny_dir: Path, planted_packed_pt2: Path, reference_cache: Path, tmp_path: Path
) -> None:
    code, report, out = run_cli(
        "--model", tiny_dir, "--artifacts", planted_packed_pt2, "--artifacts-dir", tmp_path / "none", "--cases",
        "packed-mix", "--references", "sdpa-fp32", "--reference-cache", reference_cache, "--results-dir", tmp_path,
        "--name", "planted",
    )  # fmt: skip
    assert code == 1
    failing = {r["case"] for r in report["results"] if r["status"] == "fail"}
    assert failing == {f"packed-mix[{i}]" for i in range(6)}  # every item: the defect is in the weights
    (loc,) = report["localisation"]
    assert loc["case"].startswith("packed-mix[") and loc["first_layer"] == f"encoder.layers.{PLANTED_LAYER}"
    assert "run on the packed call holding the item (packed-mix: its rows" in loc["method"]
    assert loc["probe_consistency"] < 1e-6  # the probe's packed call reproduces the artifact's output for the item
    assert [row["passed"] for row in loc["layers"]] == [True, True, False, False]
    assert "first failing layer: encoder.layers.1" in (out / "report.md").read_text()


def test_the_onnx_probe_reads_a_packed_items_hidden_states(
    tiny_dir: Path, tiny_packed_fp32: Available[Path], mix_case: PackedCase
) -> None:
    """The ONNX graph probe runs a packed call in the flat layout and cuts every hidden state to one item's rows:
    each equals the item's own eager hidden states (fp32 rounding). (The pt2 program probe: the planted test.)"""
    kind = "onnx"
    config, sha = load_config(tiny_dir), weights_sha256(tiny_dir)
    art = from_file(tiny_packed_fp32[kind], config, sha, torch.device("cpu"))
    probe = make_probe(art, "auto", tiny_dir, small_model=True)
    assert not isinstance(probe, str), probe
    bank = ReferenceBank(tiny_dir, torch.device("cpu"), config.num_hidden_layers)
    try:
        index = 0  # the square image: in the call of four items in both kinds
        subject = packed_subject(art, mix_case, index)
        a, b = subject.rows or (0, 0)
        assert int(subject.inputs[1].numel()) // 3 > b - a  # a call of several items
        states = {k: subject.take(v) for k, v in probe.states(*subject.inputs).items()}
        eager = bank.hidden_states(mix_case.items[index], config.num_hidden_layers, GOLDEN)
        assert sorted(states) == list(range(config.num_hidden_layers + 1))
        for k, state in states.items():
            assert compare(state, eager[k]).rel_l2 < FP32_ROUNDING, (kind, k)
    finally:
        probe.close()
        art.close()


def test_the_packed_onnx_graph_softmaxes_without_a_nan_guard(tiny_packed_fp32: Available[Path]) -> None:
    """Mask attention is additive (0 / -inf), so the exporter adds no IsNaN + Where over each layer's attention
    probabilities (its guard for a bool mask's fully masked rows, which a packed call never has): that pass cost a
    quarter of a 1,024-token call in onnxruntime, full size. Every Softmax feeds the P.V MatMul directly."""
    graph = onnx.load(str(tiny_packed_fp32["onnx"]), load_external_data=False).graph
    consumers = {name: [n.op_type for n in graph.node if name in n.input] for n in graph.node for name in n.output}
    softmaxes = [n for n in graph.node if n.op_type == "Softmax"]
    assert len(softmaxes) == read_manifest(tiny_packed_fp32["onnx"]).extra["layers_run"]
    assert all(consumers[n.output[0]] == ["MatMul"] for n in softmaxes), [consumers[n.output[0]] for n in softmaxes]
