"""`python -m corpus`: a real-media corpus (corpus.sample: photo crops from scikit-image's wheel at four sizes, PyAV
clips of 1, 3, 6 and 12 frames, and broken files of every kind) through the tiny ONNX artifact of the session, on
one machine and on a local Ray instance; error rows, resuming after a hard crash, a row's features against
`runtime.load` on the same decoded input, features precisions, manifests with per-row codec selections, and the
one-line errors of a user's mistakes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest
import torch

import runtime
from contract.errors import InputError
from contract.manifest import read_manifest
from corpus import cli, stored_features
from corpus.batching import embed_items, plan_batches
from corpus.decode import DecodeConfig, decode_item
from corpus.job import INDEX
from corpus.sample import expected_errors, write_sample
from corpus.shards import CRASH_AFTER
from corpus.sources import Item
from runtime.embed import MediaSettings, embed_inputs, fit_to_profile
from runtime.media import load_processor, load_selection
from runtime.positions import frame_timeline
from tests.conftest import copy_artifact

ROOT = Path(__file__).resolve().parent.parent
SHARD_SIZE = 8  # 38 files -> 5 shards
MAX_FILE_MIB = 1.0  # odd/big.bmp (1.4 MiB) is "too large"
MODE = "native"  # shapes vary by file (four image sizes, clips), so batches group by shape


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    write_sample(folder)
    return folder


@pytest.fixture(scope="module")
def artifact(tiny_artifacts_fp32: dict[str, Path]) -> Path:
    return tiny_artifacts_fp32["onnx"]  # fp32, test-small: batch 1..4, frames 1..4, H 14..112, W 28..112


def corpus_argv(source: Path, out: Path, artifact: Path, model: Path, *extra: str) -> list[str]:
    return [str(source), "--out", str(out), "--artifact", str(artifact), "--model", str(model), *extra]


def sample_argv(sample: Path, out: Path, artifact: Path, model: Path, *extra: str) -> list[str]:
    options = ["--mode", MODE, "--shard-size", str(SHARD_SIZE), "--max-file-mib", str(MAX_FILE_MIB)]
    return corpus_argv(sample, out, artifact, model, *options, "--no-progress", *extra)


def read(out: Path) -> pa.Table:
    """Every row of an output folder (pyarrow reads the folder as one dataset), in input order."""
    return pq.read_table(out).sort_by("index")


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


@pytest.fixture(scope="module")
def local_out(sample: Path, artifact: Path, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert cli.main(sample_argv(sample, out, artifact, tiny_dir, "--workers", "1")) == 0
    return out


@pytest.fixture(scope="module")
def ray_out(sample: Path, artifact: Path, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "out"
    assert cli.main(sample_argv(sample, out, artifact, tiny_dir, "--ray", "--ray-cpus", "2")) == 0
    return out


@pytest.fixture(scope="module")
def runner(artifact: Path) -> Iterator[runtime.Runner]:
    with runtime.load(artifact) as r:
        yield r


@pytest.fixture(scope="module")
def processor(tiny_dir: Path) -> object:
    return load_processor(tiny_dir)


def fitted(processor: object, runner: runtime.Runner, **options: Any) -> MediaSettings:
    """The media settings the command uses: its options fitted to the artifact's profile, as runtime embed does."""
    settings, _ = fit_to_profile(MediaSettings(**options), processor, runner.profile)
    return settings


def features_of(row: dict[str, Any], precision: str = "fp32") -> torch.Tensor:
    return stored_features(row["features"], int(row["tokens"]), int(row["hidden"]), precision)


# -- one machine: one row per input, every broken file its error --------------------------------------------------


def test_one_row_per_input_and_every_broken_file_its_error(
    local_out: Path, sample: Path, artifact: Path, runner: runtime.Runner, processor: object
) -> None:
    table = read(local_out)
    files = sorted(p for p in sample.rglob("*") if p.is_file())
    assert table.column("index").to_pylist() == list(range(len(files)))
    assert table.column("path").to_pylist() == [str(p) for p in files]
    expected = expected_errors(MODE, runner.profile.frames.opt, MAX_FILE_MIB)
    assert len(expected) == 11  # 7 broken files, the 1-frame clip, 10 px and 16 px images, the 1.4 MiB BMP
    sha = read_manifest(artifact).sha256
    for row in rows(table):
        rel = Path(str(row["path"])).relative_to(sample).as_posix()
        assert row["reason"] == expected.get(rel, ""), (rel, row["error"])
        assert bool(row["error"]) == (rel in expected), rel
        assert (row["features"] is None) == (rel in expected), rel
        assert row["artifact_sha256"] == sha
        content = (sample / rel).read_bytes()
        readable = rel not in ("broken/empty.png", "broken/notes.xyz", "odd/big.bmp")
        assert row["sha256"] == (hashlib.sha256(content).hexdigest() if readable else ""), rel
    errors = {Path(str(r["path"])).relative_to(sample).as_posix(): str(r["error"]) for r in rows(table)}
    assert "unsupported file type '.xyz'" in errors["broken/notes.xyz"]
    assert "decompression bomb" in errors["broken/bomb.png"]
    assert "smaller than one 14x14 patch" in errors["odd/tiny-10px.png"]
    assert "fewer than the 2 asked for" in errors["videos/one-frame.mp4"]
    # The 16 px image decodes to one 14x14 patch: refused with the runtime's own InputError text.
    small = embed_inputs(sample / "odd/small-16px.png", processor, fitted(processor, runner, mode=MODE))
    with pytest.raises(InputError) as refused:
        runner(small.pixel_values, small.patch_positions)
    assert errors["odd/small-16px.png"] == str(refused.value)
    assert "width 14 outside profile 'test-small'" in str(refused.value)


def test_the_summary_and_the_index(local_out: Path, sample: Path) -> None:
    index = json.loads((local_out / INDEX).read_text())
    assert index["shards"] == 5 and sorted(index["done"]) == ["0", "1", "2", "3", "4"]
    assert sum(info["rows"] for info in index["done"].values()) == 38
    failed: dict[str, int] = {}
    for info in index["done"].values():
        for reason, count in info["reasons"].items():
            failed[reason] = failed.get(reason, 0) + count
    assert failed == {"media": 6, "too large": 2, "empty": 1, "unsupported": 1, "profile": 1}
    assert sorted(p.name for p in local_out.iterdir()) == [INDEX] + [f"part-0000{k}.parquet" for k in range(5)]


# -- the same rows on Ray, and each row equals runtime.load on its input -------------------------------------------


def test_ray_gives_the_same_rows(local_out: Path, ray_out: Path) -> None:
    local, on_ray = read(local_out), read(ray_out)
    assert on_ray.schema.equals(local.schema, check_metadata=True)
    for name in local.column_names:
        if name != "features":
            assert on_ray.column(name).equals(local.column(name)), name
    # Shards are the unit of work on both paths, so every batch is the same: features bit for bit.
    for a, b in zip(rows(local), rows(on_ray), strict=True):
        assert (a["features"] is None) == (b["features"] is None)
        if a["features"] is not None:
            assert np.array_equal(np.asarray(a["features"]).view(np.uint32), np.asarray(b["features"]).view(np.uint32))


def test_features_equal_runtime_load_on_the_same_input(
    local_out: Path, runner: runtime.Runner, processor: object
) -> None:
    settings = fitted(processor, runner, mode=MODE)
    batched = 0
    for part in sorted(local_out.glob("part-*.parquet")):
        calls: dict[int, list[dict[str, Any]]] = {}
        for row in rows(pq.read_table(part)):
            if not row["error"]:
                calls.setdefault(int(row["call"]), []).append(row)
        for members in calls.values():
            inputs = [embed_inputs(str(r["path"]), processor, settings) for r in members]
            for r, x in zip(members, inputs, strict=True):
                assert r["shape"] == list(x.pixel_values.shape[2:]) and r["batch_size"] == len(members)
                assert torch.equal(torch.tensor(r["positions"]).view(-1, 3), x.patch_positions[0].int())
            # The same call again (same items, same order): bit-identical.
            out = runner(torch.cat([x.pixel_values for x in inputs]), torch.cat([x.patch_positions for x in inputs]))
            for i, r in enumerate(members):
                assert torch.equal(features_of(r), out[i]), r["path"]
                alone = runner(inputs[i].pixel_values, inputs[i].patch_positions)[0]
                torch.testing.assert_close(features_of(r), alone, rtol=1e-5, atol=1e-5)  # another batch: rounding
            batched += len(members) > 1
    assert batched >= 5  # equal shapes did share calls


def test_batches_group_equal_shapes_in_order() -> None:
    assert plan_batches(["a", "b", "a", "a", "b", "a", "a"], 2) == [[0, 2], [3, 5], [6], [1, 4]]


def test_a_refused_call_is_retried_item_by_item(
    sample: Path, runner: runtime.Runner, processor: object, tiny_dir: Path
) -> None:
    """Two items the profile refuses share a call with each other: each becomes its own `profile` row, and the
    items of another shape still share theirs."""
    config = DecodeConfig(str(tiny_dir), fitted(processor, runner, mode=MODE), 2**30)
    files = ["odd/small-16px.png", "images/rocket-96x96.jpg", "odd/small-16px.png", "images/coffee-96x96.png"]
    decoded = [decode_item(i, Item(f, str(sample / f)), processor, config) for i, f in enumerate(files)]
    assert decoded[0].shape == decoded[2].shape == (1, 14, 14)
    results = embed_items(runner, decoded)
    assert [r.reason for r in results] == ["profile", "", "profile", ""]
    assert results[0].error == results[2].error and "width 14 outside profile 'test-small'" in results[0].error
    assert [r.call for r in results] == [-1, 3, -1, 3]  # calls 0 (both), 1 and 2 (each alone) refused; 3: the pair
    assert results[1].batch_size == results[3].batch_size == 2


# -- nothing lost: a run killed part-way and run again ------------------------------------------------------------


def run_cli(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "corpus", *argv], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def test_a_killed_run_finishes_on_the_next_one(
    sample: Path, artifact: Path, tiny_dir: Path, local_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = sample_argv(sample, out, artifact, tiny_dir)
    crashed = run_cli([*argv, "--workers", "1"], **{CRASH_AFTER: "2"})
    assert crashed.returncode == 70, crashed.stderr  # os._exit after writing shard 1, before recording it
    assert sorted(json.loads((out / INDEX).read_text())["done"]) == ["0"]
    assert (out / "part-00001.parquet").is_file()  # written, not recorded: the next run writes it again

    assert cli.main([*argv, "--workers", "0"]) == 0  # the same job: decode workers are not part of it
    assert "(4 written by this run)" in capsys.readouterr().out
    table, reference = read(out), read(local_out)
    assert table.column("index").to_pylist() == list(range(38))  # exactly one row per input
    assert table.equals(reference, check_metadata=True)

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert cli.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


# -- features precision, pooled vectors, another job's folder -----------------------------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_precisions_pooled_and_another_jobs_output(
    sample: Path, artifact: Path, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["images/rocket-96x96.jpg", "images/logo-160x120.png", "images/camera-200x100.jpg", "videos/pan-6.mp4"]
    for name in names:
        (tmp_path / Path(name).name).symlink_to(sample / name)
    listing = tmp_path / "paths.txt"  # relative paths: resolved against the list's folder
    listing.write_text("# three photos and a clip\n" + "".join(f"{Path(n).name}\n" for n in names))
    fp32, bf16, fp16 = tmp_path / "fp32", tmp_path / "bf16", tmp_path / "fp16"
    common = ["--workers", "0", "--no-progress"]  # crop mode: the defaults fitted to test-small (112 px, 2 frames)
    assert cli.main(corpus_argv(listing, fp32, artifact, tiny_dir, *common)) == 0
    assert cli.main(corpus_argv(listing, fp16, artifact, tiny_dir, *common, "--features", "fp16")) == 0
    capsys.readouterr()
    assert cli.main(corpus_argv(listing, fp32, artifact, tiny_dir, *common, "--features", "bf16")) == 2
    assert "features: fp32 there, bf16 here" in one_error_line(capsys)
    capsys.readouterr()
    argv = corpus_argv(listing, bf16, artifact, tiny_dir, *common, "--features", "bf16", "--pooled")
    assert cli.main(argv) == 0
    reference = rows(read(fp32))
    assert [r["path"] for r in reference] == [Path(n).name for n in names]
    assert [r["shape"] for r in reference] == [[1, 112, 112]] * 3 + [[2, 112, 112]]
    half, brain = read(fp16), read(bf16)
    assert half.schema.metadata[b"corpus.features_dtype"] == b"float16"
    assert brain.schema.metadata[b"corpus.features_dtype"] == b"bfloat16"
    assert brain.schema.metadata[b"corpus.features_storage"] == b"uint16-bfloat16-bits"
    assert brain.schema.field("features").type == pa.list_(pa.uint16())
    for f32, f16, b16 in zip(reference, rows(half), rows(brain), strict=True):
        exact = features_of(f32)
        assert torch.equal(features_of(f16, "fp16"), exact.to(torch.float16))
        assert torch.equal(features_of(b16, "bf16"), exact.to(torch.bfloat16))
        pooled = stored_features(b16["pooled"], 1, exact.shape[1], "bf16")[0]
        assert torch.equal(pooled, exact.mean(0).to(torch.bfloat16))
    # --overwrite replaces another job's output.
    assert cli.main(corpus_argv(listing, fp32, artifact, tiny_dir, *common, "--features", "bf16", "--overwrite")) == 0
    replaced = read(fp32)
    assert replaced.schema.metadata[b"corpus.features_dtype"] == b"bfloat16"
    assert replaced.column("features").equals(brain.column("features"))


# -- manifests: Parquet and CSV, a path column, per-row codec selections ------------------------------------------


def test_manifests_with_per_row_codec_selections(
    sample: Path, artifact: Path, tiny_dir: Path, runner: runtime.Runner, processor: object, tmp_path: Path
) -> None:
    # One 112 px canvas (8 x 8 patches): the top half of frame 0 and the bottom half of frame 5.
    halves = [[0, h, w] for h in range(4) for w in range(8)] + [[5, h, w] for h in range(4, 8) for w in range(8)]
    selection = tmp_path / "halves.json"
    selection.write_text(json.dumps(halves))
    table = pa.table(
        {
            "file": [str(sample / "videos/pan-12.mp4"), str(sample / "videos/pan-6.mp4"), "images/chelsea-96x96.jpg"],
            "keep": [selection.name, None, None],
        }
    )
    (tmp_path / "images").symlink_to(sample / "images")
    pq.write_table(table, tmp_path / "manifest.parquet")
    pyarrow.csv.write_csv(table, tmp_path / "manifest.csv")
    options = ["--mode", "codec", "--path-column", "file", "--selection-column", "keep", "--workers", "0"]
    outs = {}
    for name in ("manifest.parquet", "manifest.csv"):
        outs[name] = tmp_path / f"out-{name}"
        assert cli.main(corpus_argv(tmp_path / name, outs[name], artifact, tiny_dir, *options, "--no-progress")) == 0
    parquet_rows, csv_rows = rows(read(outs["manifest.parquet"])), rows(read(outs["manifest.csv"]))
    assert parquet_rows == csv_rows
    settings = fitted(processor, runner, mode="codec")
    chosen = embed_inputs(sample / "videos/pan-12.mp4", processor, settings, selection=load_selection(selection))
    scored = embed_inputs(sample / "videos/pan-6.mp4", processor, settings)
    for row, inputs in zip(parquet_rows[:2], (chosen, scored), strict=True):
        assert row["kind"] == "codec" and not row["error"]
        assert torch.equal(torch.tensor(row["positions"]).view(-1, 3), inputs.patch_positions[0].int())
        alone = runner(inputs.pixel_values, inputs.patch_positions)[0]
        torch.testing.assert_close(features_of(row), alone, rtol=1e-5, atol=1e-5)
    assert chosen.tokens == 64 and scored.tokens == 128  # one canvas chosen; the scores fill the profile's opt 2
    slots = frame_timeline(12).tolist()  # all 12 frames of the clip on the 64-slot timeline
    assert sorted(set(np.asarray(parquet_rows[0]["positions"]).reshape(-1, 3)[:, 0].tolist())) == [0, slots[5]]
    assert parquet_rows[2]["reason"] == "media" and "codec mode needs a video" in str(parquet_rows[2]["error"])


# -- a user's mistakes: one line, exit 2 ---------------------------------------------------------------------------


def test_mistakes_are_one_error_line(
    sample: Path, artifact: Path, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"

    def refused(argv: list[str]) -> str:
        assert cli.main([*argv, "--no-progress", "--workers", "0"]) == 2
        return one_error_line(capsys)

    assert "no such file or folder" in refused(corpus_argv(tmp_path / "missing", out, artifact, tiny_dir))
    csv = tmp_path / "files.csv"
    csv.write_text("file,label\nimages/a.jpg,1\n")
    assert "no column 'path' (--path-column); its columns: file, label" in refused(
        corpus_argv(csv, out, artifact, tiny_dir)
    )
    no_manifest = tmp_path / "model.onnx"
    no_manifest.write_bytes(b"onnx")
    assert "no manifest model.onnx.json" in refused(corpus_argv(sample, out, no_manifest, tiny_dir))
    damaged = copy_artifact(artifact, tmp_path / "damaged")
    damaged.write_bytes(damaged.read_bytes()[:-10])
    assert "damaged, truncated or was replaced" in refused(corpus_argv(sample, out, damaged, tiny_dir))
    assert "--selection-column needs --mode codec" in refused(
        corpus_argv(csv, out, artifact, tiny_dir, "--selection-column", "label")
    )
    actors = corpus_argv(sample, out, artifact, tiny_dir, "--ray-actors", "0")
    assert "--ray-actors must be >= 1, got 0" in refused(actors)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine\n")
    assert "not empty and holds no corpus index" in refused(corpus_argv(sample, tmp_path / "busy", artifact, tiny_dir))
    assert not out.exists()  # nothing was started by any of them


def test_corpus_imports_only_runtime_and_contract() -> None:
    """corpus sits downstream of runtime like a service: no models, export, parity, benchmarks or serving."""
    from tests.test_import_cycles import bundle_modules, import_graph

    graph = import_graph(bundle_modules())
    corpus_modules = [name for name in graph if name.split(".")[0] == "corpus"]
    assert len(corpus_modules) >= 10
    for name in corpus_modules:
        outside = {dep for dep in graph[name] if dep.split(".")[0] not in ("corpus", "runtime", "contract")}
        assert not outside, f"{name} imports {sorted(outside)}"
