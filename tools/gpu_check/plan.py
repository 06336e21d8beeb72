"""The step plan of `make gpu-check`: each step's tier, command, time estimate and what a later call may reuse.

Imports only the standard library and `contract.backends` (itself standard-library only), so `make gpu-check-plan`
prints the plan on any machine, torch or not.

Tiers: `core` (`make gpu-check`) proves the mission's core within GPU_CHECK_BUDGET_S (default 420 s of the 10 minutes
one call may run): tiny pt2, AOTInductor and ONNX artifacts in fp32 and bf16 against eager CUDA fp32 and bf16 over
every parity case, the full-size pt2 bf16 artifact (and the full-size AOTInductor bf16 package only when its compile
fits the budget left after every other core step), full-size parity at the default cases, the C++ AOTInductor runner
on CUDA, `pytest -m gpu` and a short bf16 benchmark. `full` (`GPU_CHECK=full`, a second call) adds the rest; steps
done by the first call are reused.

Estimates are seconds on one H100 SXM with 16 CPU cores (the lent machine), written down before any GPU ran them:
`ESTIMATE_BASIS` says what each rests on. The CPU rehearsal (`make gpu-check-rehearsal`) records measured seconds
for the same steps on the CPU in its summary; a GPU call records the real ones.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from contract.backends import BACKENDS

CORE, FULL = "core", "full"
TIERS = (CORE, FULL)
DEFAULT_BUDGET_S = 420
TINY_PROFILE = "test-small"
FULL_PROFILE = "image-448"
CODEC_PROFILE = "codec-8x448"

# Seconds on one H100 (16 cores); the rehearsal's CPU seconds sit beside them in its summary.
ESTIMATE_BASIS = {
    "checkpoints": "writing the synthetic full-size checkpoint (300M seeded parameters, 0.6 GB bf16): ~20 s on 2 CPU "
    "cores here, guessed no slower there",
    "export-small": "tiny pt2/ONNX/TorchScript exports: python start + torch/transformers import ~5 s, each export "
    "~3 s (measured on 2 CPU cores here; CPU-bound tracing, the GPU does not speed it up)",
    "aoti-tiny": "a tiny AOTInductor CUDA compile: Inductor codegen + Triton kernels (parallel over 16 cores) + the "
    "C++ wrapper's compile, guessed 40 s (the CPU compile of the same graph takes ~35 s here on 2 cores)",
    "export-full": "full-size torch.export (24 layers): ~17 s here (CPU-bound tracing), + load and verify",
    "aoti-full": "full-size AOTInductor CUDA compile: guessed 180 s (the CPU compile takes ~60 s here; CUDA adds "
    "Triton autotuning of 24 identical layers' kernels): run in core only if it fits the budget",
    "cmake": "C++ runner: 6 translation units against libtorch's headers, -j 16: guessed 60 s (~150 s on 2 cores here)",
    "pytest-gpu": "tests/test_gpu.py on the tiny artifacts built above (no rebuild): model loads and 4 shapes per "
    "kind, guessed 30 s",
    "parity-tiny": "tiny references on CUDA + 11 cases x the tiny artifacts: guessed 45 s (~60 s on 2 CPU cores here)",
    "parity-full": "full-size references on CUDA (golden fp64 + 4 eager models, each loaded once: ~5 s each) and the "
    "image-448 cases (B up to 32): guessed 60 s",
    "bench": "benchmark processes (eager and each artifact, b1 and b32 at 448², bf16; each loads the model, ~8 s, "
    "then 2 warm-ups + 10 timed calls of < 0.1 s): guessed 45 s",
    "tests-cuda": "the CUDA-aware tests of the normal suite (export all --device cuda: one more tiny AOTInductor "
    "compile): guessed 120 s",
    "bench-long": "video/codec workloads, 20 iterations each: guessed 150 s",
    "mixed-exports": "full-size packed-any pt2 + AOTInductor bf16 (default attention) and the same pair batched over "
    "the mix's shapes (benchmarks/profiles/mix-batched.json): 2 x (40 s export + 180 s AOTInductor CUDA compile, the "
    "bases above), and pt2 packed-any with the other attention (40 s)",
    "mixed": "python -m benchmarks.mixed on the mix (48 items, 138k tokens: ~0.25 PFLOP a pass, ~0.6 s at 400 TFLOP/s "
    "bf16) for pt2 and AOTInductor: each kind's process loads 3-4 full-size artifacts (~8 s each) and makes the 48 "
    "items (~3 s on the CPU here), then 1 warm-up + 5 rounds of 4-5 strategies (one at a time is 48 calls): "
    "guessed 120 s",
}


@dataclass(frozen=True)
class Target:
    """Where the plan runs: on a CUDA GPU (the check itself) or on the CPU (the rehearsal, the tiny checkpoint
    standing in for the full-size one)."""

    device: str  # "cuda" | "cpu"
    python: str
    results: Path
    artifacts: Path
    tiny_model: str = "checkpoints/synthetic-tiny"
    full_model: str = "checkpoints/synthetic-full"
    onnx_on_cuda: bool = False  # onnxruntime has its CUDA provider here (onnxruntime-gpu)
    cpp_build: Path = Path("runtime/cpp/build")
    bench_iters: int = 10
    bench_warmup: int = 2

    @property
    def rehearsal(self) -> bool:
        return self.device != "cuda"

    @property
    def tiny_arts(self) -> Path:
        return self.artifacts / "tiny"

    @property
    def full_arts(self) -> Path:
        return self.artifacts / "full"


@dataclass
class Step:
    name: str
    tier: str
    estimate_s: float
    basis: str  # key of ESTIMATE_BASIS
    cmd: list[str]
    timeout_s: int = 600
    optional: bool = False  # runs only if it fits the budget together with every non-optional step after it
    needs: tuple[str, ...] = ()  # toolchain pieces the preflight must have found ("nvcc", "cpp")
    outputs: tuple[Path, ...] = ()  # files a later call reuses when the step's key still matches
    models: tuple[str, ...] = ()  # checkpoints whose weights the result depends on (part of the reuse key)
    env: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    seconds: float = 0.0
    log: str = ""

    @property
    def command(self) -> str:
        return shlex.join(self.cmd)


# The kinds built for the device without TensorRT (which cannot be installed): built on the device asked for and run
# on CUDA (contract/backends.py: no fixed build device, CUDA among the devices it runs on or none fixed).
TINY_KINDS = tuple(
    k for k, b in BACKENDS.items() if b.build_device is None and (b.devices is None or "cuda" in b.devices)
)
PT2, AOTI = (
    "pt2",
    "aoti",
)  # the full-size artifacts the check builds: the torch kinds (pt2, and the AOTInductor compile)


def artifact(folder: Path, kind: str, precision: str, profile: str) -> Path:
    """The path `python -m export` writes (export/artifact.py's naming, output layer -1)."""
    return folder / f"{kind}-{precision}-{profile}{BACKENDS[kind].suffix}"


def _export(t: Target, kinds: str, model: str, precision: str, profile: str, out: Path, device: str) -> list[str]:
    args = ["--model", model, "--precision", precision, "--profile", profile, "--device", device, "--out", str(out)]
    return [t.python, "-m", "export", kinds, *args, "--quiet", "--overwrite"]


def _tiny_exports(t: Target) -> list[Step]:
    """pt2, AOTInductor and ONNX (and TorchScript) of the tiny checkpoint in fp32 and bf16, for the target device; a
    pt2 exported on the CPU (run on the GPU by the parity suite: a device-free program moves)."""
    steps = []
    kinds = TINY_KINDS
    for precision in ("fp32", "bf16"):
        outputs = tuple(artifact(t.tiny_arts, k, precision, TINY_PROFILE) for k in kinds)
        cmd = [t.python, "-m", "export", "all", "--model", t.tiny_model, "--precision", precision]
        cmd += ["--profile", TINY_PROFILE, "--device", t.device, "--out", str(t.tiny_arts), "--quiet", "--overwrite"]
        cmd += ["--kinds", ",".join(kinds)]
        steps.append(
            Step(f"tiny: export {', '.join(kinds)} {precision}", CORE, 55, "aoti-tiny", cmd, 900,
                 needs=("nvcc",) if t.device == "cuda" else (), outputs=outputs, models=(t.tiny_model,))
        )  # fmt: skip
    moved = artifact(t.tiny_arts / "cpu-built", PT2, "fp32", TINY_PROFILE)
    cmd = _export(t, PT2, t.tiny_model, "fp32", TINY_PROFILE, t.tiny_arts / "cpu-built", "cpu")
    steps.append(
        Step("tiny: pt2 fp32 exported on the CPU (moves to the GPU)", FULL, 8, "export-small", cmd,
             outputs=(moved,), models=(t.tiny_model,))
    )  # fmt: skip
    return steps


def _full_export(
    t: Target, kind: str, precision: str, profile: str, tier: str, estimate_s: float, basis: str, optional: bool = False
) -> Step:
    compiles = basis == "aoti-full"  # an AOTInductor CUDA compile needs the CUDA toolkit
    return Step(
        f"full: export {kind} {precision} {profile}",
        tier,
        estimate_s,
        basis,
        _export(t, kind, t.full_model, precision, profile, t.full_arts, t.device),
        1200,
        optional=optional,
        needs=("nvcc",) if compiles and t.device == "cuda" else (),
        outputs=(artifact(t.full_arts, kind, precision, profile),),
        models=(t.full_model,),
    )


def _cmake(t: Target) -> Step:
    prefix = f"$({shlex.quote(t.python)} -c 'import torch; print(torch.utils.cmake_prefix_path)')"
    build = shlex.quote(str(t.cpp_build))
    script = (
        f'cmake -S runtime/cpp -B {build} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="{prefix}" '
        '-DNLOHMANN_JSON_INCLUDE_DIR="$NLOHMANN_JSON_INCLUDE_DIR" ${ONEVISION_CMAKE_ARGS:-} '
        f"&& cmake --build {build} -j $(nproc)"
    )
    return Step("C++ runner (cmake, libtorch of this torch)", CORE, 60, "cmake", ["bash", "-c", script], 900,
                needs=("cpp",), outputs=(t.cpp_build / "onevision_run",))  # fmt: skip


def _parity(t: Target, name: str, model: str, arts: Path, extra: list[str]) -> list[str]:
    cmd = [t.python, "-m", "parity", "--model", model, "--artifacts-dir", str(arts), "--device", t.device]
    cmd += ["--results-dir", str(t.results / "parity"), "--name", name, "--no-progress", *extra]
    cmd += ["--reference-cache", str(t.artifacts / "reference-cache")]  # beside the artifacts, not in the reports
    if not t.onnx_on_cuda and t.device == "cuda":
        cmd += ["--run-on", "onnx=cpu"]  # onnxruntime without its CUDA provider: the ONNX artifacts run on the CPU
    return cmd


def _bench(t: Target, name: str, workloads: str, iters: int, models: str) -> list[str]:
    cmd = [t.python, "-m", "benchmarks", "--model", models, "--artifacts-dir", str(t.full_arts), "--device", t.device]
    cmd += ["--precisions", "bf16", "--workloads", workloads, "--iters", str(iters), "--warmup", str(t.bench_warmup)]
    return [*cmd, "--out", str(t.results), "--name", name]


def plan(t: Target, tier: str = CORE) -> list[Step]:
    """The steps of `tier` (full = core + the rest), in the order they run."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    checkpoints = "from models.synthetic import ensure_default as e; e('tiny')"
    if t.full_model == "checkpoints/synthetic-full":
        checkpoints += "; e('full')"
    gpu_env = {"ONEVISION_GPU_ARTIFACTS": str(t.tiny_arts), "ONEVISION_CPP_RUNNER": str(t.cpp_build / "onevision_run")}
    pytest_gpu = [t.python, "-m", "pytest", "-m", "gpu", "-q", "-rs", "tests/test_gpu.py", "-p", "no:cacheprovider"]
    pytest_gpu += ["--junitxml", str(t.results / "pytest-gpu.xml")]
    tiny_parity = ["--cases", "all", "--artifacts", "pt2,aoti,onnx,eager-fp32,eager-bf16"]
    steps = [
        Step("checkpoints (synthetic tiny and full size)", CORE, 25, "checkpoints", [t.python, "-c", checkpoints]),
        *_tiny_exports(t),
        _full_export(t, PT2, "bf16", FULL_PROFILE, CORE, 40, "export-full"),
        _cmake(t),
        Step("pytest -m gpu", CORE, 30, "pytest-gpu", pytest_gpu, 900, env=gpu_env),
        Step("parity: tiny, every case (references on the device)", CORE, 45, "parity-tiny",
             _parity(t, "tiny-all", t.tiny_model, t.tiny_arts, tiny_parity), models=(t.tiny_model,)),
        _full_export(t, AOTI, "bf16", FULL_PROFILE, CORE, 180, "aoti-full", optional=True),
        Step("parity: full size, default cases", CORE, 60, "parity-full",
             _parity(t, "fullsize-default", t.full_model, t.full_arts, []), 900, models=(t.full_model,)),
        Step("benchmarks: bf16 image-448 b1 and b32", CORE, 45, "bench",
             _bench(t, "bench-bf16", "image-448-b1,image-448-b32", t.bench_iters, t.full_model), 900),
    ]  # fmt: skip
    core = [s for s in steps if s.tier == CORE]
    if tier == CORE:
        return core
    aware = ["tests/test_export.py", "tests/test_runtime.py", "tests/test_tf32.py", "-k", "cli_all or cuda or tf32"]
    full = [
        *steps,
        _full_export(t, PT2, "fp32", FULL_PROFILE, FULL, 40, "export-full"),
        _full_export(t, PT2, "bf16", CODEC_PROFILE, FULL, 40, "export-full"),
        _full_export(t, AOTI, "bf16", CODEC_PROFILE, FULL, 180, "aoti-full"),
        Step("pytest: CUDA-aware tests of the normal suite", FULL, 120, "tests-cuda",
             [t.python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *aware], 1200),
        Step("parity: full size, every case", FULL, 120, "parity-full",
             _parity(t, "fullsize-all", t.full_model, t.full_arts, ["--cases", "all"]), 1200,
             models=(t.full_model,)),
        Step("benchmarks: bf16 video and codec, longer", FULL, 150, "bench-long",
             _bench(t, "bench-bf16-long", "image-448-b32,video-4x448,codec-8x448", 2 * t.bench_iters,
                    t.full_model), 1200),
    ]  # fmt: skip
    if t.onnx_on_cuda:
        onnx = next(k for k, b in BACKENDS.items() if b.onnx_graph)
        full.insert(-3, _full_export(t, onnx, "fp32", FULL_PROFILE, FULL, 40, "export-full"))
    return [*full, *_mixed(t)]


MIXED_PACKED = "packed-any"
MIXED_BATCHED = "benchmarks/profiles/mix-batched.json"  # batched over every item of the mix (one at a time, padded)


def _mixed(t: Target) -> list[Step]:
    """The mixed-workload benchmark (benchmarks/mixed.py) on the GPU: bf16, the `mix` workload, pt2 and AOTInductor
    packed-any (each kind's default packed attention, and pt2 with the other one too) against one at a time and
    padded-to-the-largest batches of a batched artifact covering the mix."""
    folder = t.full_arts / "mixed"
    other = "mask" if BACKENDS["pt2"].packed == "padded" else "padded"
    steps = []
    for sub, profile in (("packed", MIXED_PACKED), ("batched", MIXED_BATCHED)):
        cmd = [t.python, "-m", "export", "all", "--kinds", "pt2,aoti", "--model", t.full_model, "--precision", "bf16"]
        cmd += ["--profile", profile, "--device", t.device, "--out", str(folder / sub), "--quiet", "--overwrite"]
        name = Path(profile).stem
        outputs = tuple(artifact(folder / sub, k, "bf16", name) for k in ("pt2", "aoti"))
        steps.append(
            Step(f"mixed: export pt2, aoti bf16 {name}", FULL, 220, "mixed-exports", cmd, 1200,
                 needs=("nvcc",) if t.device == "cuda" else (), outputs=outputs, models=(t.full_model,))
        )  # fmt: skip
    cmd = _export(t, "pt2", t.full_model, "bf16", MIXED_PACKED, folder / f"packed-{other}", t.device)
    steps.append(
        Step(f"mixed: export pt2 bf16 {MIXED_PACKED}, {other} attention", FULL, 40, "mixed-exports",
             [*cmd, "--option", f"packed_attention={other}"], 1200,
             outputs=(artifact(folder / f"packed-{other}", "pt2", "bf16", MIXED_PACKED),), models=(t.full_model,))
    )  # fmt: skip
    bench = [t.python, "-m", "benchmarks.mixed", "--model", t.full_model, "--artifacts-dir", str(folder)]
    bench += ["--device", t.device, "--precision", "bf16", "--workloads", "mix", "--kinds", "pt2,aoti"]
    bench += ["--rounds", str(max(1, t.bench_iters // 2)), "--warmup", str(t.bench_warmup)]
    bench += ["--out", str(t.results), "--name", "mixed-bf16"]
    steps.append(Step("benchmarks: mixed workload, bf16 (one at a time, padded, packed)", FULL, 120, "mixed", bench,
                      1200))  # fmt: skip
    return steps


def estimate(steps: list[Step]) -> float:
    """Seconds the non-optional steps are estimated to take."""
    return sum(s.estimate_s for s in steps if not s.optional)


def describe(t: Target) -> str:
    """Both tiers, one line a step with its estimate, then `core: <seconds> s estimated` (what make gpu-check-plan
    prints)."""
    lines = [f"gpu-check plan (estimates: seconds on one H100 with 16 cores; basis in {__name__})", ""]
    for tier in TIERS:
        steps = plan(t, tier)
        lines.append(f"tier {tier}" + (" (GPU_CHECK=full: core, then these)" if tier == FULL else " (make gpu-check)"))
        for i, s in enumerate(steps, 1):
            if tier == FULL and s.tier == CORE:
                continue
            flag = " [only if it fits the budget]" if s.optional else ""
            lines.append(f"  {i:2d}. {s.estimate_s:5.0f} s  {s.name}{flag}")
        lines.append(f"  {tier}: {estimate(steps):.0f} s estimated")
        lines.append("")
    lines.append(f"core: {estimate(plan(t, CORE)):.0f} s estimated")
    return "\n".join(lines)
