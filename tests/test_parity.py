"""The parity suite (issue: parity): metrics, the calibrated rule, the case matrix, and the suite end to end on tiny
artifacts of every kind that runs on the CPU, including planted defects that must fail and be localised."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from contract.profiles import MIN_TOKENS, PACKED_PROFILES, PROFILES, PackedProfile, Range
from export import BuildRequest, build
from models.rope import VideoRotaryEmbeddingSplit466
from parity import (
    CASES,
    PACKED_CASES,
    CaseContext,
    CaseInput,
    PackedCase,
    SuiteConfig,
    build_case,
    build_packed_case,
    compare,
    eager_artifact,
    load_tolerances,
    run_suite,
)
from parity.__main__ import main
from parity.cases import CPU_FULL_SIZE_CASES, Skip, largest_item, load_input, parse_cases, regroup, save_input
from parity.report import write_reports
from parity.tolerances import ToleranceError
from runtime.positions import frame_timeline, grid_positions
from tests.conftest import Available, copy_artifact, run_cli

PROFILE = PROFILES["test-small"]
PLANTED_LAYER = 1  # encoder.layers.1 gets the perturbed weight


def build_all(model_dir: Path, out: Path, jobs: list[tuple[str, str]]) -> Path:
    for kind, precision in jobs:
        build(kind, BuildRequest(model_dir, precision, [PROFILE], out, options={"quiet": True}))
    return out


# --- fixtures: artifacts built once per module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_artifacts(
    tiny_dir: Path, tiny_artifacts_fp32: Available[Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every kind that runs on this CPU: pt2, aoti, onnx, torchscript in fp32 (copies of the session's shared
    artifacts), and pt2 and torchscript in bf16."""
    out = tmp_path_factory.mktemp("artifacts")
    for kind in ("pt2", "aoti", "onnx", "torchscript"):
        copy_artifact(tiny_artifacts_fp32[kind], out)
    return build_all(tiny_dir, out, [("pt2", "bf16"), ("torchscript", "bf16")])


@pytest.fixture(scope="module")
def perturbed_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with one weight of encoder.layers.1 perturbed by 1% of its std (a subtle defect)."""
    out = tmp_path_factory.mktemp("perturbed") / "tiny"
    shutil.copytree(tiny_dir, out)
    tensors = load_file(str(out / "model.safetensors"))
    name = f"encoder.layers.{PLANTED_LAYER}.mlp.fc2.weight"
    w = tensors[name].float()
    noise = torch.randn(w.shape, generator=torch.Generator().manual_seed(7)) * w.std() * 0.01
    tensors[name] = (w + noise).to(tensors[name].dtype)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def planted_artifacts(perturbed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pt2 and ONNX artifacts built from the perturbed weights (tested against the clean checkpoint)."""
    return build_all(perturbed_dir, tmp_path_factory.mktemp("planted"), [("pt2", "fp32"), ("onnx", "fp32")])


def _rope_in_bf16(self: VideoRotaryEmbeddingSplit466, patch_positions: torch.Tensor) -> torch.Tensor:
    """The classic RoPE export bug: angles position * inv_freq computed in bfloat16."""
    inv = [getattr(self, f"inv_freq_{axis}").to(torch.bfloat16) for axis in "thw"]
    pos = patch_positions.to(torch.bfloat16)
    return torch.cat([pos[..., i : i + 1] * inv[i] for i in range(3)], dim=-1).float()


@pytest.fixture(scope="module")
def rope_bf16_artifact(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp32 pt2 exported while the RoPE angles were computed in bf16."""
    out = tmp_path_factory.mktemp("rope-bf16")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VideoRotaryEmbeddingSplit466, "forward_from_positions", _rope_in_bf16)
        return build_all(tiny_dir, out, [("pt2", "fp32")])


# --- metrics and the rule -----------------------------------------------------------------------------------------


def test_metrics_known_values() -> None:
    r = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])
    a = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])  # token 1 rotated by 90 degrees
    m = compare(a, r)
    assert m.max_abs == 1.0 and m.mean_abs == 0.5
    assert math.isclose(m.rel_l2, math.sqrt(2) / math.sqrt(26))
    assert math.isclose(m.max_angle, math.pi / 2) and abs(m.min_cos) < 1e-12 and m.worst_token == 1
    assert m.nonfinite == 0
    same = compare(r, r)
    assert same.rel_l2 == 0 and same.max_angle == 0 and same.min_cos == 1
    tiny = r.clone().double()
    tiny[0, 0, 0] += 1e-12  # angle far below float64's 1 - cos resolution is still measured
    assert 0 < compare(tiny, r.double()).max_angle < 1e-12
    bad = a.clone()
    bad[0, 0, 0] = float("nan")
    assert compare(bad, r).nonfinite == 1
    with pytest.raises(ValueError, match="shape mismatch"):
        compare(a[:, :1], r)


def test_metrics_p999_large_tensor() -> None:
    x = torch.arange(2**24 + 8, dtype=torch.float32).reshape(1, -1, 8)  # > 2^24 elements: torch.quantile refuses
    m = compare(x, torch.zeros_like(x) + 1.0)
    assert m.p999_abs == pytest.approx(0.999 * (x.numel() - 1) - 1, rel=1e-6)


def test_tolerances_file_is_versioned_and_reasoned() -> None:
    tol = load_tolerances()
    assert tol.version >= 1
    for pa in ("fp32", "bf16", "fp16"):
        for pr in ("fp64", "fp32", "bf16"):
            rule = tol.rule(pa, pr)
            assert rule.why.strip()
            # Consistency of the triangle inequality: a reference row allows at least the golden's k + 1.
            if pr != "fp64":
                assert rule.k_rel_l2 >= tol.rule(pa, "fp64").k_rel_l2 + 1
    with pytest.raises(ToleranceError, match="no rule"):
        tol.rule("int8", "fp64")


def test_rule_is_k_times_inherent_error(tmp_path: Path) -> None:
    tol = load_tolerances()
    rule = tol.rule("bf16", "fp64")
    inherent = (0.01, 0.02)
    bound = rule.k_rel_l2 * 0.01 + rule.floor_rel_l2
    r = torch.randn(1, 64, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(r.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for scale, passes in ((0.9, True), (1.1, False)):
        a = r + noise * (scale * bound * r.norm() / noise.norm())
        m = compare(a, r)
        m.max_angle = 0.0  # judge the rel_l2 half alone
        verdict = tol.judge(m, "bf16", "fp64", inherent, (0.0, 0.0))
        assert verdict.passed is passes, (scale, verdict)
    # NaN fails whatever the distances.
    m = compare(r, r)
    m.nonfinite = 3
    assert not tol.judge(m, "bf16", "fp64", inherent, (0.0, 0.0)).passed
    # A file without reasons is refused.
    data = json.loads(tol.path.read_text())
    del data["rules"]["bf16/fp64"]["why"]
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(ToleranceError, match="why"):
        load_tolerances(tmp_path / "t.json")


# --- cases ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_case_fits_or_skips_with_reason(profile: str) -> None:
    p = PROFILES[profile]
    ctx = CaseContext(p)
    built = {name: build_case(name, ctx) for name in CASES if name != "profile-max" or profile == "test-small"}
    for name, case in built.items():
        if isinstance(case, Skip):
            assert case.reason.startswith(f"outside profile {profile} ("), case.reason
            continue
        b, t, h, w = case.shape
        assert not p.violations(b, t, h, w), (name, case.shape)
        assert case.patch_positions.shape == (b, t * (h // 14) * (w // 14), 3)
        assert case.patch_positions.dtype == torch.int64 and case.patch_positions.min() >= 0
        assert case.pixel_values.dtype == torch.float32 and torch.isfinite(case.pixel_values).all()
    # One token never fits an exported graph.
    one = built["one-patch"]
    assert isinstance(one, Skip) and f">= {MIN_TOKENS} tokens" in one.reason


def test_case_matrix_on_test_small() -> None:
    ctx = CaseContext(PROFILE)
    cases = {name: build_case(name, ctx) for name in CASES}
    ran = {n for n, c in cases.items() if isinstance(c, CaseInput)}
    assert len(CASES) >= 11
    assert ran == {
        "image-nonsquare",
        "image-batch",
        "timeline-64",
        "random-positions",
        "codec-packed",
        "profile-min",
        "profile-max",
    }
    assert "height 448 not in [14, 112]" in cases["image-448"].reason  # type: ignore[union-attr]
    batch = cases["image-batch"]
    assert isinstance(batch, CaseInput) and batch.shape[0] == PROFILE.batch.max  # uses the profile's batch range
    assert not torch.equal(batch.pixel_values[0], batch.pixel_values[1])
    timeline = cases["timeline-64"]
    assert isinstance(timeline, CaseInput)
    t = timeline.shape[1]
    assert torch.equal(timeline.patch_positions[0, :: 8 * 8, 0], frame_timeline(t, 64))
    rnd = cases["random-positions"]
    assert isinstance(rnd, CaseInput)
    assert not torch.equal(rnd.patch_positions, grid_positions(1, rnd.shape[1], 4, 4))
    codec = cases["codec-packed"]
    assert isinstance(codec, CaseInput) and int(codec.patch_positions[..., 0].max()) == 63
    lo, hi = cases["profile-min"], cases["profile-max"]
    assert isinstance(lo, CaseInput) and isinstance(hi, CaseInput)
    assert lo.shape == (1, 1, 14, 28) and hi.shape == (4, 4, 112, 112)
    # Seeded: the same inputs every time.
    again = build_case("codec-packed", CaseContext(PROFILE))
    assert isinstance(again, CaseInput) and torch.equal(again.pixel_values, codec.pixel_values)


def test_cases_take_patch_and_timeline_from_the_checkpoint_config() -> None:
    """The timeline and codec cases place frames on the config's own `rope_temporal_size`, not a constant 64."""
    from models import OneVisionEncoderConfig

    ctx = CaseContext.for_config(OneVisionEncoderConfig(rope_temporal_size=16), PROFILE)
    assert (ctx.patch, ctx.timeline) == (14, 16)
    timeline = build_case("timeline-64", ctx)
    assert isinstance(timeline, CaseInput)
    assert torch.equal(timeline.patch_positions[0, :: 8 * 8, 0], frame_timeline(timeline.shape[1], 16))
    assert "16-frame timeline" in timeline.title
    codec = build_case("codec-packed", ctx)
    assert isinstance(codec, CaseInput) and int(codec.patch_positions[..., 0].max()) == 15
    rnd = build_case("random-positions", ctx)
    assert isinstance(rnd, CaseInput) and int(rnd.patch_positions[..., 0].max()) <= 15
    unbounded = CaseContext.for_config(OneVisionEncoderConfig(rope_temporal_size=None), PROFILE)
    assert unbounded.timeline == CaseContext(PROFILE).timeline == 64  # the published default, from the config class


def test_eager_stand_in_runs_every_case(tiny_dir: Path, tmp_path: Path) -> None:
    """No profile: every case runs (one token included); the eager model passes against every reference."""
    code, report, _ = run_cli(
        "--model", tiny_dir, "--artifacts", "eager-fp32", "--artifacts-dir", tmp_path / "none", "--cases",
        "one-patch,image-448,video-16x224", "--results-dir", tmp_path, "--name", "eager",
    )  # fmt: skip
    assert code == 0, report.get("results")
    statuses = {(r["case"], r["reference"]): r["status"] for r in report["results"]}
    assert statuses[("one-patch", "golden-fp64")] == "pass"
    assert {s for s in statuses.values()} == {"pass"}


def test_run_suite_returns_and_writes_nothing(tiny_dir: Path, tmp_path: Path) -> None:
    """run_suite only computes; the CLI writes report.json/report.md and the inputs once (write_reports)."""
    out = tmp_path / "results"
    cfg = SuiteConfig(
        model_dir=tiny_dir,
        device=torch.device("cpu"),
        references=["sdpa-fp32"],
        cases=["one-patch"],
        tolerances=load_tolerances(),
        out_dir=out,
        progress=False,
        log=lambda msg: None,
    )
    res = run_suite(cfg, [eager_artifact(tiny_dir, "fp32", "cpu")])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert not res.failed and {r.status for r in res.rows} == {"pass"}
    jpath, mpath = write_reports(res, cfg)
    assert json.loads(jpath.read_text())["results"] and mpath.is_file()
    assert [p.name for p in (out / "inputs").iterdir()] == [f"{c.file_stem}.safetensors" for c in res.cases.values()]


# --- end to end on real artifacts ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_suite_passes_on_every_cpu_artifact_kind(tiny_dir: Path, tiny_artifacts: Path, tmp_path: Path) -> None:
    code, report, out = run_cli(
        "--model", tiny_dir, "--artifacts-dir", tiny_artifacts, "--cases", "all", "--results-dir", tmp_path,
        "--name", "ci",
    )  # fmt: skip
    assert code == 0, "\n".join(r["reason"] for r in report["results"] if r["status"] in ("fail", "error"))
    arts = {a["name"]: a for a in report["artifacts"]}
    assert set(arts) == {
        "pt2-fp32-test-small.pt2",
        "aoti-fp32-test-small.pt2",
        "onnx-fp32-test-small.onnx",
        "pt2-bf16-test-small.pt2",
        "torchscript-fp32-test-small.pt",
        "torchscript-bf16-test-small.pt",
    }
    assert {a["status"] for a in arts.values()} == {"PASS"}
    rows = report["results"]
    refs = {r["reference"] for r in rows if r["status"] == "pass"}
    assert refs == {"golden-fp64", "sdpa-fp32", "sdpa-bf16", "eager-fp32", "eager-bf16"}
    for row in rows:
        if row["status"] == "pass":
            assert set(row["metrics"]) >= {"max_abs", "mean_abs", "p999_abs", "rel_l2", "min_cos", "nonfinite"}
    skipped = {(r["artifact"], r["case"]): r["reason"] for r in rows if r["status"] == "skipped"}
    assert "outside profile test-small" in skipped[("pt2-fp32-test-small.pt2", "one-patch")]
    assert "outside profile test-small" in skipped[("onnx-fp32-test-small.onnx", "video-4x448")]
    md = (out / "report.md").read_text()
    assert "| `aoti-fp32-test-small.pt2` | aoti | fp32 |" in md and "skipped: outside profile test-small" in md
    inputs = sorted(p.name for p in (out / "inputs").glob("*.safetensors"))
    assert len(inputs) == 7 and "codec-packed@1x2x56x56.safetensors" in inputs

    # --replay re-runs the saved inputs bit for bit.
    code2, again, _ = run_cli(
        "--replay", out, "--artifacts-dir", tiny_artifacts, "--artifacts", "pt2-fp32,onnx", "--results-dir", tmp_path,
        "--name", "replay",
    )  # fmt: skip
    assert code2 == 0 and again["replay"] is True
    before = {(r["artifact"], r["case_key"], r["reference"]): r["metrics"] for r in rows if r["metrics"]}
    after = [r for r in again["results"] if r["metrics"]]
    assert after and all(before[(r["artifact"], r["case_key"], r["reference"])] == r["metrics"] for r in after)


@pytest.mark.slow
def test_planted_weight_fails_and_names_the_layer(
    tiny_dir: Path, planted_artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, out = run_cli(
        "--model", tiny_dir, "--artifacts-dir", planted_artifacts, "--cases", "image-batch,codec-packed",
        "--results-dir", tmp_path, "--name", "planted",
    )  # fmt: skip
    assert code == 1
    assert {a["status"] for a in report["artifacts"]} == {"FAIL"}
    assert all("built from other weights" in a["warnings"][0] for a in report["artifacts"])
    locs = {loc["artifact"]: loc for loc in report["localisation"]}
    assert set(locs) == {"pt2-fp32-test-small.pt2", "onnx-fp32-test-small.onnx"}
    for loc in locs.values():
        assert loc["first_layer"] == f"encoder.layers.{PLANTED_LAYER}", loc["message"]
        assert loc["probe_consistency"] < 1e-5  # the probe reproduces the artifact's own output
        layers = loc["layers"]
        assert [row["passed"] for row in layers] == [True, True, False, False]  # embeddings, layer 0 pass
    assert "first failing layer: encoder.layers.1" in (out / "report.md").read_text()
    assert "first failing layer: encoder.layers.1" in capsys.readouterr().out


@pytest.mark.slow
def test_planted_rope_in_bf16_fails_at_layer_0(tiny_dir: Path, rope_bf16_artifact: Path, tmp_path: Path) -> None:
    code, report, _ = run_cli(
        "--model", tiny_dir, "--artifacts-dir", rope_bf16_artifact, "--cases", "timeline-64", "--results-dir",
        tmp_path, "--name", "rope",
    )  # fmt: skip
    assert code == 1
    (loc,) = report["localisation"]
    assert loc["first_layer"] == "encoder.layers.0" and "Interpreter" in loc["method"]
    # Against the bf16 references an fp32 artifact with bf16 RoPE still passes: only the fp32 rule can see it.
    failing = {r["reference"] for r in report["results"] if r["status"] == "fail"}
    assert failing == {"golden-fp64", "sdpa-fp32", "eager-fp32"}


@pytest.mark.slow
def test_rebuild_bisection_localises(perturbed_dir: Path, tiny_dir: Path, tmp_path: Path) -> None:
    """--localise rebuild (what compiled kinds use): truncated builds from the manifest's source checkpoint."""
    arts = build_all(perturbed_dir, tmp_path / "a", [("pt2", "fp32")])
    code, report, _ = run_cli(
        "--model", tiny_dir, "--artifacts-dir", arts, "--cases", "random-positions", "--localise", "rebuild",
        "--results-dir", tmp_path, "--name", "rebuild",
    )  # fmt: skip
    assert code == 1
    (loc,) = report["localisation"]
    assert loc["first_layer"] == f"encoder.layers.{PLANTED_LAYER}" and "(2 builds)" in loc["method"]


# --- remote code reference ----------------------------------------------------------------------------------------


@pytest.fixture
def remote_ckpt(tiny_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A checkpoint folder that ships its own modeling code: the synthetic layout does, as published ones do (it is
    the bundle's independent implementation from models/remote_code/, not upstream's)."""
    out = tmp_path / f"remote-{tmp_path.name}"
    shutil.copytree(tiny_dir, out)
    assert (out / "modeling_onevision_encoder.py").is_file() and (out / "configuration_onevision_encoder.py").is_file()
    yield out


def test_remote_reference_runs_the_checkpoint_code(remote_ckpt: Path, tmp_path: Path) -> None:
    code, report, _ = run_cli(
        "--model", remote_ckpt, "--artifacts", "eager-fp32", "--artifacts-dir", tmp_path / "none", "--cases",
        "image-nonsquare,codec-packed", "--remote-reference", "--results-dir", tmp_path, "--name", "remote",
    )  # fmt: skip
    assert code == 0
    assert (
        report["remote_class"].startswith("transformers_modules.")
        and "modeling_onevision_encoder" in (report["remote_class"])
    )
    rows = {(r["case"], r["reference"]): r for r in report["results"]}
    for case in ("image-nonsquare", "codec-packed"):
        remote = rows[(case, "remote-fp32")]
        assert remote["status"] == "pass"
        # Really another implementation: close to ours, but not bit-identical.
        assert 0 < remote["metrics"]["rel_l2"] < 1e-5
        assert rows[(case, "remote-bf16")]["status"] == "pass"


def test_a_broken_reference_is_no_yardstick(remote_ckpt: Path, tmp_path: Path) -> None:
    """A reference far off the float64 golden (here: the checkpoint's own code with a planted attention-scale error)
    would widen every bound against it (max(e_A, e_R)) until the artifact passes; it is reported as an error naming
    the reference instead. Before this check both rows passed."""
    modeling = remote_ckpt / "modeling_onevision_encoder.py"
    source = modeling.read_text()
    assert "** -0.5" in source
    modeling.write_text(source.replace("** -0.5", "** -0.4"))
    code, report, _ = run_cli(
        "--model", remote_ckpt, "--artifacts", "eager-fp32", "--artifacts-dir", tmp_path / "none", "--cases",
        "image-nonsquare", "--remote-reference", "--results-dir", tmp_path, "--name", "broken-remote",
    )  # fmt: skip
    assert code != 0
    rows = {r["reference"]: r for r in report["results"] if r["case"] == "image-nonsquare"}
    for name in ("remote-fp32", "remote-bf16"):
        assert rows[name]["status"] == "error"
        assert rows[name]["reason"].startswith(f"reference {name} is itself off the golden: rel_l2")
    assert rows["golden-fp64"]["status"] == "pass" and rows["sdpa-bf16"]["status"] == "pass"


def test_remote_reference_needs_remote_code(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "no-remote-code"
    shutil.copytree(tiny_dir, bare, ignore=shutil.ignore_patterns("*_onevision_encoder.py"))
    code = main(["--model", str(bare), "--artifacts", "eager-fp32", "--remote-reference", "--no-progress"])
    assert code == 2
    assert "modeling_onevision_encoder.py" in capsys.readouterr().err


def test_cli_usage_errors(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", str(tiny_dir), "--cases", "nope"]) == 2
    assert "unknown case" in capsys.readouterr().err
    assert main(["--model", str(tiny_dir), "--artifacts-dir", str(tmp_path), "--artifacts", "nothing-like-it"]) == 2
    assert "nothing matches" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--remote-reference" in capsys.readouterr().out


def test_onnx_bf16_is_reported_as_not_supported_by_onnxruntime(tiny_dir: Path, tmp_path: Path) -> None:
    """A bf16 ONNX (no bf16 Conv in onnxruntime) is a skipped artifact saying so, not a crash or an error row."""
    arts = build_all(tiny_dir, tmp_path / "arts", [("onnx", "bf16")])
    code, report, out = run_cli(
        "--model", tiny_dir, "--artifacts-dir", arts, "--cases", "profile-min", "--device", "cpu",
        "--results-dir", tmp_path, "--name", "bf16",
    )  # fmt: skip
    assert code == 0
    (art,) = report["artifacts"]
    assert "not supported by onnxruntime" in art["skip_reason"] and not art["error"]
    md = (out / "report.md").read_text()
    assert "not supported by onnxruntime" in md and "no TF32" in md  # and the report states the fp32 rule


# --- packed cases (parity of packed artifacts: tests/test_packed.py) ----------------------------------------------

PACKED = PACKED_PROFILES["packed-test-small"]


def test_packed_cases_fit_the_packed_profile_item_by_item() -> None:
    ctx = CaseContext(PACKED, min_tokens=1)
    built = {name: build_packed_case(name, ctx) for name in PACKED_CASES}
    shapes = {}
    for name, case in built.items():
        assert isinstance(case, PackedCase), (name, case)
        assert [item.name for item in case.items] == [f"{name}[{i}]" for i in range(len(case.items))]
        for item in case.items:
            b, t, h, w = item.shape
            assert b == 1 and not PACKED.item_violations(t, h, w), item.key
            assert item.patch_positions.shape == (1, t * (h // 14) * (w // 14), 3)
            assert item.patch_positions.dtype == torch.int64 and torch.isfinite(item.pixel_values).all()
        assert len({item.key for item in case.items}) == len(case.items)  # own seeds: own references
        shapes[name] = [item.shape for item in case.items]
    assert shapes["packed-mix"] == [(1, 1, 112, 112), (1, 1, 56, 112), (1, 1, 112, 56), (1, 2, 112, 112),
                                    (1, 2, 112, 112), (1, 1, 14, 14)]  # fmt: skip
    assert shapes["packed-videos"] == [(1, 1, 112, 112), (1, 2, 112, 112), (1, 4, 112, 112)]
    assert shapes["packed-extremes"] == [(1, 1, 14, 14), (1, 4, 112, 112)]
    mix = built["packed-mix"]
    assert isinstance(mix, PackedCase) and int(mix.items[4].patch_positions[..., 0].max()) == 63  # the codec item
    assert "adapted to the profile" in mix.note and "instead of 1x224x448" in mix.items[1].note
    assert "frames 1, 2, 4" in built["packed-videos"].note  # type: ignore[union-attr]
    again, videos = build_packed_case("packed-videos", CaseContext(PACKED, min_tokens=1)), built["packed-videos"]
    assert isinstance(again, PackedCase) and isinstance(videos, PackedCase) and again.key == videos.key  # seeded
    assert all(torch.equal(a.pixel_values, b.pixel_values) for a, b in zip(again.items, videos.items, strict=True))
    # Each kind of artifact runs its own cases.
    assert "packed artifacts (profile packed-test-small) run the packed cases" in build_case("image-448", ctx).reason  # type: ignore[union-attr]
    assert "runs on packed artifacts only" in build_packed_case("packed-mix", CaseContext(PROFILE)).reason  # type: ignore[union-attr]


def test_packed_cases_on_the_full_size_profile_and_a_tight_budget() -> None:
    full = PACKED_PROFILES["packed-any"]
    mix = build_packed_case("packed-mix", CaseContext(full, min_tokens=1))
    assert isinstance(mix, PackedCase) and mix.note == ""  # canonical shapes: nothing adapted
    assert mix.tokens == 2560  # the CPU full-size default stays near three 448² images
    assert largest_item(full) == (16, 448, 448) and full.item_tokens(16, 448, 448) == full.call_tokens.max
    assert largest_item(PACKED) == (4, 112, 112)
    # A budget of 64 tokens a call: the items over it are dropped, saying so; one item left is no packed case.
    tight = PackedProfile("tight", Range(2, 32, 64), Range(1, 2, 8), PACKED.frames, PACKED.height, PACKED.width)
    small = build_packed_case("packed-mix", CaseContext(tight, min_tokens=1))
    assert isinstance(small, PackedCase) and len(small.items) == 4
    assert "2-frame video dropped (outside profile tight (128 tokens over profile 'tight''s budget" in small.note
    videos = build_packed_case("packed-videos", CaseContext(tight, min_tokens=1))
    assert isinstance(videos, Skip) and "one item fits, a packed case needs two" in videos.reason


def test_case_names_cover_batched_and_packed() -> None:
    assert parse_cases(None) == [*CASES, *PACKED_CASES] == parse_cases("all")
    assert parse_cases("cpu-quick") == [*CPU_FULL_SIZE_CASES, "packed-mix"]
    assert parse_cases("image-448,packed-extremes") == ["image-448", "packed-extremes"]
    with pytest.raises(ValueError, match="packed-videos"):
        parse_cases("packed-nope")


def test_packed_items_are_saved_and_regrouped_for_replay(tmp_path: Path) -> None:
    case = build_packed_case("packed-videos", CaseContext(PACKED, min_tokens=1))
    assert isinstance(case, PackedCase)
    single = build_case("profile-min", CaseContext(PROFILE))
    assert isinstance(single, CaseInput)
    paths = [save_input(item, tmp_path) for item in [*case.items, single]]
    loaded = [load_input(p) for p in reversed(paths)]
    regrouped = regroup(loaded)
    (again,) = [c for c in regrouped if isinstance(c, PackedCase)]
    assert again.name == "packed-videos" and again.key == case.key
    assert all(torch.equal(a.pixel_values, b.pixel_values) for a, b in zip(again.items, case.items, strict=True))
    assert [c.key for c in regrouped if isinstance(c, CaseInput)] == [single.key]
