"""The C++ runtime (runtime/cpp): build it with CMake against the torch wheel's libtorch, run an AOTInductor package
and a TorchScript module with `onevision_run` on .npy inputs and compare with the Python runner on the same inputs.

The build directory is runtime/cpp/build (the Makefile's `make runtime-cpp` uses the same one), so reruns only
rebuild what changed; a lock file serialises concurrent builds in one checkout.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nlohmann_json
import numpy as np
import pytest
import torch

import runtime
from contract.errors import InputError
from contract.manifest import file_sha256, manifest_path
from contract.packing import pack
from contract.profiles import PROFILES
from export import BuildRequest, build
from export.inputs import packed_items
from runtime.base import Runner
from runtime.positions import grid_positions, video_positions
from tests.conftest import Available, copy_artifact, seeded

ROOT = Path(__file__).resolve().parents[1]
CPP = ROOT / "runtime" / "cpp"
BUILD = CPP / "build"
EXIT_INPUT, EXIT_ARTIFACT = 2, 3
CPP_ATOL = 1e-6  # same AOTI kernels as Python: measured identical (max abs diff 0)


def _toolchain_missing() -> str | None:
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (c++/g++/clang++)")
    return f"the C++ runtime needs {' and '.join(missing)} on PATH" if missing else None


def _run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def binary() -> Iterator[Path]:
    reason = _toolchain_missing()
    if reason:
        pytest.skip(reason)
    BUILD.mkdir(parents=True, exist_ok=True)
    with (BUILD / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        configure = _run(
            [
                "cmake",
                "-S",
                str(CPP),
                "-B",
                str(BUILD),
                "-DCMAKE_BUILD_TYPE=Release",
                f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                f"-DNLOHMANN_JSON_INCLUDE_DIR={nlohmann_json.get_include()}",  # as the Makefile passes it
            ]
        )
        if configure.returncode:
            pytest.fail(f"cmake configure failed:\n{configure.stdout[-3000:]}\n{configure.stderr[-3000:]}")
        built = _run(["cmake", "--build", str(BUILD), "-j", "2"])
        if built.returncode:
            pytest.fail(f"cmake build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}")
    exe = BUILD / "onevision_run"
    assert exe.is_file()
    yield exe


@pytest.fixture(scope="module")
def aoti(tiny_artifacts_fp32: dict[str, Path]) -> Path:
    """The session's shared fp32 AOTInductor package of test-small (tests/conftest.py; damaged only through copies)."""
    return tiny_artifacts_fp32["aoti"]


@pytest.fixture(scope="module")
def py_runner(aoti: Path) -> Runner:
    return runtime.load(aoti)


def run_cpp(
    exe: Path, artifact: Path, pv: np.ndarray, pos: np.ndarray, folder: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "pv.npy", pv)
    np.save(folder / "pos.npy", pos)
    out = folder / "out.npy"
    cmd = [str(exe), "--artifact", str(artifact), "--pixel-values", str(folder / "pv.npy")]
    cmd += ["--positions", str(folder / "pos.npy"), "--out", str(out), *extra]
    return _run(cmd, timeout=300), out


INPUTS = {
    "image": lambda: seeded(1, 3, 1, 56, 42, seed=1),
    "video-b2": lambda: seeded(2, 3, 3, 28, 56, seed=2),
    "max": lambda: seeded(4, 3, 4, 112, 112, seed=3),
    "rank4": lambda: seeded(2, 3, 42, 28, seed=4),
}


@pytest.mark.parametrize("case", sorted(INPUTS))
def test_cpp_matches_python(binary: Path, aoti: Path, py_runner: Runner, tmp_path: Path, case: str) -> None:
    pv = INPUTS[case]()
    pos = video_positions(pv, 64 if case == "video-b2" else None)
    positions = pos.numpy().astype(np.int32) if case == "rank4" else pos.numpy()  # int32 converts losslessly
    result, out = run_cpp(binary, aoti, pv.numpy(), positions, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "aoti-cpu on cpu" in result.stdout
    got = np.load(out)
    expected = py_runner(pv, pos).numpy()
    assert got.shape == expected.shape and got.dtype == np.float32
    diff = float(np.abs(got - expected).max())
    assert diff <= CPP_ATOL, f"C++ vs Python max abs diff {diff}"


def test_cpp_repeat_and_help(binary: Path, aoti: Path, tmp_path: Path) -> None:
    pv = seeded(1, 3, 1, 28, 28)
    result, _ = run_cpp(binary, aoti, pv.numpy(), video_positions(pv).numpy(), tmp_path, "--repeat", "3")
    assert result.returncode == 0 and "(mean of 3)" in result.stdout, result.stderr
    helped = _run([str(binary), "--help"])
    assert helped.returncode == 0 and "--pixel-values" in helped.stdout
    usage = _run([str(binary), "--artifact", str(aoti)])
    assert usage.returncode == EXIT_INPUT and "missing --pixel-values" in usage.stderr


def test_cpp_runner_threads_agree_with_sequential_runs(
    binary: Path, aoti: Path, py_runner: Runner, tmp_path: Path
) -> None:
    """The C++ Runner's thread-safety contract (the same test runs the TensorRT runner where a GPU and TensorRT are):
    4 threads call one runner at once, each on its own input, and every output equals the sequential run of that
    input bit for bit."""
    pv = seeded(2, 3, 2, 56, 56, seed=6)
    result, out = run_cpp(
        binary, aoti, pv.numpy(), video_positions(pv).numpy(), tmp_path, "--threads", "4", "--repeat", "5"
    )
    assert result.returncode == 0, result.stderr
    assert "threads 4 x 5: all 20 outputs identical to the sequential runs" in result.stdout
    assert np.array_equal(np.load(out), py_runner(pv, video_positions(pv)).numpy())
    bad = _run(
        [
            str(binary),
            "--artifact",
            str(aoti),
            "--pixel-values",
            "x",
            "--positions",
            "y",
            "--out",
            "z",
            "--threads",
            "0",
        ]
    )
    assert bad.returncode == EXIT_INPUT and "--threads must be >= 1" in bad.stderr


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def torchscript(
    request: pytest.FixtureRequest,
    tiny_dir: Path,
    tiny_artifacts_fp32: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    if request.param == "fp32":
        return tiny_artifacts_fp32["torchscript"]
    out = tmp_path_factory.mktemp("cpp-torchscript")
    ts = BuildRequest(tiny_dir, request.param, [PROFILES["test-small"]], out, options={"quiet": True})
    return build("torchscript", ts).path


def test_cpp_torchscript_is_bit_identical_to_python(binary: Path, torchscript: Path, tmp_path: Path) -> None:
    """torch::jit::load runs the same frozen graph as torch.jit.load: equal bits, at several shapes of the profile
    (one process, --threads 4 on the largest also checks concurrent calls) and in fp32 and bf16."""
    py_runner = runtime.load(torchscript)
    for i, case in enumerate(("image", "video-b2", "max")):
        pv = INPUTS[case]()
        pos = video_positions(pv, 64 if case == "video-b2" else None)
        threads = ("--threads", "4", "--repeat", "2") if case == "max" else ()
        result, out = run_cpp(binary, torchscript, pv.numpy(), pos.numpy(), tmp_path / str(i), *threads)
        assert result.returncode == 0, result.stderr
        assert "torchscript on cpu" in result.stdout, result.stdout
        if threads:
            assert "all 8 outputs identical to the sequential runs" in result.stdout, result.stdout
        expected = py_runner(pv.numpy(), pos).float().numpy()  # bf16: float32 pixels rounded the same way
        assert np.array_equal(np.load(out), expected), f"{case}: C++ and Python outputs differ"


def _ok() -> tuple[np.ndarray, np.ndarray]:
    pv = seeded(1, 3, 1, 28, 28, seed=5)
    return pv.numpy(), grid_positions(1, 1, 2, 2).numpy()


def _nan() -> tuple[np.ndarray, np.ndarray]:
    pv, pos = _ok()
    pv = pv.copy()
    pv[0, 0, 0, 1, 1] = np.nan
    return pv, pos


def _negative() -> tuple[np.ndarray, np.ndarray]:
    pv, pos = _ok()
    pos = pos.copy()
    pos[0, 1, 2] = -3
    return pv, pos


BAD_INPUTS = {
    "H not multiple of 14": (
        lambda: (seeded(1, 3, 1, 30, 28).numpy(), grid_positions(1, 1, 2, 2).numpy()),
        "expected H and W to be positive multiples of 14, got H=30, W=28",
    ),
    "float64 pixels": (lambda: (_ok()[0].astype(np.float64), _ok()[1]), "unsupported dtype <f8"),
    "float16 pixels": (
        lambda: (_ok()[0].astype(np.float16), _ok()[1]),
        "pixel_values: expected dtype float32 (the artifact's precision), got float16",
    ),
    "float positions": (
        lambda: (_ok()[0], _ok()[1].astype(np.float32)),
        "patch_positions: expected an integer tensor (int64, or int32 converted losslessly), got float32",
    ),
    "L mismatch": (lambda: (_ok()[0], _ok()[1][:, :3]), "expected L = T*(H/14)*(W/14) = 1*2*2 = 4 rows, got 3"),
    "batch mismatch": (
        lambda: (_ok()[0], grid_positions(2, 1, 2, 2).numpy()),
        "patch_positions: expected batch 1 (the batch of pixel_values), got 2",
    ),
    "out of profile": (
        lambda: (seeded(5, 3, 1, 28, 28).numpy(), grid_positions(5, 1, 2, 2).numpy()),
        "batch 5 outside profile 'test-small' range [1, 4]",
    ),
    "4 channels": (
        lambda: (seeded(1, 4, 1, 28, 28).numpy(), _ok()[1]),
        "pixel_values: expected 3 channels (dim 1), got 4",
    ),
    "rank 3": (lambda: (seeded(3, 28, 28).numpy(), _ok()[1]), "expected rank 5 (B, 3, T, H, W) or rank 4"),
    "empty": (lambda: (np.zeros((0, 3, 1, 28, 28), np.float32), _ok()[1][:0]), "expected a non-empty tensor"),
    "NaN": (_nan, "pixel_values: expected finite values, got 1 NaN and 0 Inf"),
    "position above 2**24": (
        lambda: (_ok()[0], _ok()[1] + (1 << 24)),
        "expected values below 2**24 = 16777216 (RoPE uses them as float32), got maximum 16777217",
    ),
    "negative positions": (_negative, "patch_positions: expected non-negative [t, h, w], got minimum -3"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_cpp_bad_inputs(binary: Path, aoti: Path, tmp_path: Path, case: str) -> None:
    make, message = BAD_INPUTS[case]
    pv, pos = make()
    result, out = run_cpp(binary, aoti, pv, pos, tmp_path)
    assert result.returncode == EXIT_INPUT, (result.stdout, result.stderr)
    assert message in result.stderr
    assert not out.exists()


def test_cpp_truncated_npy(binary: Path, aoti: Path, tmp_path: Path) -> None:
    pv, pos = _ok()
    np.save(tmp_path / "pv.npy", pv)
    np.save(tmp_path / "pos.npy", pos)
    data = (tmp_path / "pv.npy").read_bytes()
    (tmp_path / "pv.npy").write_bytes(data[:-10])
    cmd = [str(binary), "--artifact", str(aoti), "--pixel-values", str(tmp_path / "pv.npy")]
    result = _run([*cmd, "--positions", str(tmp_path / "pos.npy"), "--out", str(tmp_path / "o.npy")])
    assert result.returncode == EXIT_INPUT and "truncated data" in result.stderr, result.stderr


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-manifest"])
def test_cpp_damaged_artifact(binary: Path, aoti: Path, tmp_path: Path, damage: str) -> None:
    path = copy_artifact(aoti, tmp_path / "art")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        manifest_path(path).unlink()
    pv, pos = _ok()
    result, out = run_cpp(binary, path, pv, pos, tmp_path)
    assert result.returncode == EXIT_ARTIFACT, (result.stdout, result.stderr)
    expected = "no manifest" if damage == "no-manifest" else "does not match its manifest"
    assert expected in result.stderr and not out.exists()


def test_cpp_refuses_other_kinds(binary: Path, aoti: Path, tmp_path: Path) -> None:
    """A manifest of kind pt2 (a torch.export program) is not an AOTI package: refused before loading."""
    path = copy_artifact(aoti, tmp_path / "art")
    mpath = manifest_path(path)
    mpath.write_text(mpath.read_text().replace('"kind": "aoti"', '"kind": "pt2"'))
    pv, pos = _ok()
    result, _ = run_cpp(binary, path, pv, pos, tmp_path)
    assert result.returncode == EXIT_ARTIFACT and "kind 'pt2' cannot run in C++" in result.stderr, result.stderr


def _with_side_file(aoti: Path, folder: Path) -> tuple[Path, Path]:
    """A copy of the package whose manifest lists one more file beside it (as an ONNX's external data is listed)."""
    path = copy_artifact(aoti, folder)
    side = path.with_name("weights.bin")
    side.write_bytes(bytes(range(256)) * 64)
    mpath = manifest_path(path)
    data = json.loads(mpath.read_text())
    data["files"].append({"path": side.name, "sha256": file_sha256(side), "size": side.stat().st_size})
    mpath.write_text(json.dumps(data))
    return path, side


@pytest.mark.parametrize("damage", ["none", "flip", "truncate", "missing"])
def test_cpp_checks_every_file_the_manifest_lists(binary: Path, aoti: Path, tmp_path: Path, damage: str) -> None:
    """The manifest's `files` list is checked whole (size, then sha256), like the Python runtime does."""
    path, side = _with_side_file(aoti, tmp_path / "art")
    raw = bytearray(side.read_bytes())
    if damage == "flip":
        raw[100] ^= 0x01
        side.write_bytes(bytes(raw))
    elif damage == "truncate":
        side.write_bytes(bytes(raw[:-1]))
    elif damage == "missing":
        side.unlink()
    pv, pos = _ok()
    result, out = run_cpp(binary, path, pv, pos, tmp_path)
    if damage == "none":
        assert result.returncode == 0 and out.is_file(), result.stderr
        return
    expected = {
        "flip": "weights.bin: sha256 ",
        "truncate": "weights.bin: side file of 16383 bytes does not match its manifest (16384 bytes)",
        "missing": "weights.bin: side file listed in aoti-fp32-test-small.pt2.json is missing",
    }[damage]
    assert result.returncode == EXIT_ARTIFACT and expected in result.stderr and not out.exists(), result.stderr
    assert result.stderr.count("\n") == 1


def test_cpp_reads_format_1_and_refuses_newer_manifests(binary: Path, aoti: Path, tmp_path: Path) -> None:
    path = copy_artifact(aoti, tmp_path / "art")
    mpath = manifest_path(path)
    data = json.loads(mpath.read_text())
    del data["files"]
    data["format_version"] = 1
    mpath.write_text(json.dumps(data))
    pv, pos = _ok()
    result, out = run_cpp(binary, path, pv, pos, tmp_path / "v1")
    assert result.returncode == 0 and out.is_file(), result.stderr
    data["format_version"] = 3
    mpath.write_text(json.dumps(data))
    result, _ = run_cpp(binary, path, pv, pos, tmp_path / "v3")
    assert result.returncode == EXIT_ARTIFACT and "format_version 3, expected one of 1, 2" in result.stderr


# -- packed artifacts (contract/packing.py): onevision_run --pixel-patches --positions --cu-seqlens ----------------
PACKED_KINDS = ("aoti", "torchscript")


@pytest.fixture(scope="module")
def cpp_packed_artifacts(tiny_packed_fp32: Available[Path]) -> dict[str, Path]:
    """Tiny fp32 packed (`packed-test-small`, each kind's default attention) AOTInductor and TorchScript artifacts:
    the session's shared ones (tests/conftest.py `tiny_packed_fp32`)."""
    return {kind: tiny_packed_fp32[kind] for kind in PACKED_KINDS}


def packed_call(shapes: list[tuple[int, int, int]], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One packed call (rows layout) of seeded items of these (T, H, W)."""
    return pack(packed_items(shapes, torch.float32, 14, seed=seed), 14)


def run_cpp_packed(
    exe: Path, artifact: Path, pp: Any, pos: Any, cu: Any, folder: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in (("pp", pp), ("pos", pos), ("cu", cu)):
        np.save(folder / f"{name}.npy", np.asarray(value))
    out = folder / "out.npy"
    cmd = [str(exe), "--artifact", str(artifact), "--pixel-patches", str(folder / "pp.npy")]
    cmd += ["--positions", str(folder / "pos.npy"), "--cu-seqlens", str(folder / "cu.npy"), "--out", str(out), *extra]
    return _run(cmd, timeout=300), out


@pytest.mark.parametrize("kind", PACKED_KINDS)
def test_cpp_packed_call_is_bit_identical_to_python(
    binary: Path, cpp_packed_artifacts: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    """The C++ runner detects a packed artifact from its manifest and runs one packed call: its output equals the
    Python runner's `run_packed_call` bit for bit (fp32), for items of different shapes, for offsets counted in
    position elements (3N, Triton's count), and from 3 threads at once."""
    artifact = cpp_packed_artifacts[kind]
    py_runner = runtime.load(artifact)
    pp, pos, cu = packed_call([(1, 56, 42), (2, 28, 28), (1, 14, 28), (4, 28, 56)], seed=7)
    cases = {"tokens": (cu, ()), "elements": (cu * 3, ("--threads", "3", "--repeat", "2"))}
    for name, (offsets, extra) in cases.items():
        result, out = run_cpp_packed(binary, artifact, pp, pos, offsets, tmp_path / name, *extra)
        assert result.returncode == 0, result.stderr
        assert f"{kind}, fp32" in result.stdout and "profile packed-test-small" in result.stdout, result.stdout
        if extra:
            assert "all 6 outputs identical to the sequential runs" in result.stdout, result.stdout
        expected = py_runner.run_packed_call(pp, pos, offsets).numpy()
        got = np.load(out)
        assert got.shape == expected.shape == (pos.shape[0], 128) and got.dtype == np.float32
        assert np.array_equal(got, expected), f"{kind} {name}: C++ and Python packed outputs differ"


def _bad_packed() -> dict[str, tuple[Any, str]]:
    pp, pos, cu = packed_call([(1, 28, 28), (1, 14, 28)], seed=8)  # 4 + 2 tokens
    nan = pp.clone()
    nan[1, 5] = float("nan")
    negative = pos.clone()
    negative[3, 1] = -2
    many = packed_call([(1, 14, 28)] * 9, seed=9)  # 9 items: the profile takes up to 8
    big = (torch.zeros(1026, 588), torch.zeros(1026, 3, dtype=torch.int64), torch.tensor([0, 513, 1026]))
    return {
        "offsets not from 0": (
            (pp, pos, torch.tensor([1, 4, 6], dtype=torch.int32)),
            "(B+1 offsets from 0), got [1, 4, 6]",
        ),
        "offsets not increasing": ((pp, pos, torch.tensor([0, 4, 4, 6], dtype=torch.int32)), "strictly increasing"),
        "last offset not N": (
            (pp, pos, torch.tensor([0, 4, 5], dtype=torch.int32)),
            "the last offset to be N = 6 (or 3N = 18, counted in position elements), got 5",
        ),
        "over the token budget": (
            big,
            "1026 tokens in one call, outside profile 'packed-test-small''s range [2, 1024]",
        ),
        "too many items": (many, "9 items in one call, outside profile 'packed-test-small''s range [1, 8]"),
        "patches and positions disagree": ((pp[:5], pos, cu), "pixel_patches: expected shape (6, 588) for 6 tokens"),
        "int32 positions": ((pp, pos.to(torch.int32), cu), "patch_positions must be int64 and cu_seqlens a 1-D int32"),
        "2-D offsets": ((pp, pos, cu[None]), "patch_positions must be int64 and cu_seqlens a 1-D int32"),
        "NaN": ((nan, pos, cu), "pixel_patches: expected finite values"),
        "negative positions": ((pp, negative, cu), "patch_positions: expected non-negative [t, h, w], got minimum -2"),
    }


@pytest.mark.parametrize("case", sorted(_bad_packed()))
def test_cpp_packed_bad_calls_are_one_line(
    binary: Path, cpp_packed_artifacts: dict[str, Path], tmp_path: Path, case: str
) -> None:
    """A packed call the Python runtime refuses (run_packed_call) is refused in C++ too, before the model runs: exit
    2, one line naming what is wrong, no output."""
    (pp, pos, cu), message = _bad_packed()[case]
    artifact = cpp_packed_artifacts["aoti"]
    with pytest.raises(InputError):
        runtime.load(artifact).run_packed_call(pp, pos, cu)
    result, out = run_cpp_packed(binary, artifact, pp, pos, cu, tmp_path)
    assert result.returncode == EXIT_INPUT, (result.stdout, result.stderr)
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not out.exists()


def test_cpp_packed_and_batched_calls_do_not_mix(
    binary: Path, cpp_packed_artifacts: dict[str, Path], aoti: Path, tmp_path: Path
) -> None:
    """A packed artifact given batched inputs, a batched one given a packed call, and half a packed call: one line
    each (exit 2); a manifest whose profile is packed but whose inputs are not is refused as unreadable (exit 3)."""
    packed = cpp_packed_artifacts["aoti"]
    pv, pos = _ok()
    result, _ = run_cpp(binary, packed, pv, pos, tmp_path / "a")
    assert (
        result.returncode == EXIT_INPUT and "is a packed artifact (profile 'packed-test-small'): pass " in result.stderr
    )
    pp, ppos, cu = packed_call([(1, 28, 28)], seed=1)
    result, _ = run_cpp_packed(binary, aoti, pp, ppos, cu, tmp_path / "b")
    assert result.returncode == EXIT_INPUT and "is a batched artifact (profile 'test-small')" in result.stderr
    half = _run([str(binary), "--artifact", str(packed), "--pixel-patches", "x", "--positions", "y", "--out", "z"])
    assert half.returncode == EXIT_INPUT and "--pixel-patches and --cu-seqlens go together" in half.stderr
    copy = copy_artifact(packed, tmp_path / "art")
    mpath = manifest_path(copy)
    data = json.loads(mpath.read_text())
    data["inputs"][0]["name"] = "pixel_values"
    mpath.write_text(json.dumps(data))
    result, _ = run_cpp_packed(binary, copy, pp, ppos, cu, tmp_path / "c")
    assert result.returncode == EXIT_ARTIFACT and "a packed profile without the packed inputs" in result.stderr
