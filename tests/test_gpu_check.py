"""`make gpu-check` (tools/gpu_check/): one line and nothing built without a CUDA GPU; a plan that fits the time a GPU
is lent and uses only the bundle's real command-line options; an orchestration that keeps to its budget, leaves its
summary after every step, survives a cut-off and reuses what an earlier call made; and the CPU rehearsal, in the GPU
machine's own packages, failing on a planted missing-package import and on a planted wrong step argument."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import parser as bench_parser
from benchmarks.mixed import parser as mixed_parser
from benchmarks.mixes import MIXES
from benchmarks.workloads import WORKLOADS
from contract.backends import BACKENDS
from contract.profiles import PROFILES
from export import BuildRequest
from export.__main__ import parser as export_parser
from parity.__main__ import parser as parity_parser
from tests.conftest import build_available
from tools.gpu_check.__main__ import no_cuda_line
from tools.gpu_check.plan import CORE, DEFAULT_BUDGET_S, FULL, Step, Target, estimate, plan
from tools.gpu_check.run import Call

ROOT = Path(__file__).resolve().parents[1]
REHEARSAL_PY = ROOT / ".venv-gpu-machine" / "bin" / "python"


def targets(tmp_path: Path) -> list[Target]:
    return [
        Target("cuda", sys.executable, tmp_path / "r", tmp_path / "a", onnx_on_cuda=True),
        Target("cuda", sys.executable, tmp_path / "r", tmp_path / "a", onnx_on_cuda=False),
        Target("cpu", sys.executable, tmp_path / "r", tmp_path / "a", full_model="checkpoints/synthetic-tiny"),
    ]


def test_make_gpu_check_without_cuda_is_one_line_and_builds_nothing(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        assert no_cuda_line() is None  # a GPU is here: gpu-check runs for real (make gpu-check)
        return
    results = tmp_path / "results"
    proc = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", f"RESULTS={results}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: skipped") and "no CUDA GPU" in lines[0], proc.stdout
    assert not results.exists() and not (ROOT / "artifacts" / "gpu-check").exists()


def test_plan_prints_on_any_machine_and_core_fits_the_budget() -> None:
    """`make gpu-check-plan`: both tiers with their estimates, in a Python where torch cannot be imported; the last line
    is the core tier's estimate, at most the default budget."""
    code = "import sys, runpy; sys.modules['torch'] = None; sys.argv = ['x', 'plan']; "
    code += "runpy.run_module('tools.gpu_check', run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "tier core" in proc.stdout and "tier full" in proc.stdout
    last = lines[-1].split()
    assert last[0] == "core:" and last[2:] == ["s", "estimated"] and 0 < int(last[1]) <= DEFAULT_BUDGET_S


def test_plan_uses_real_options(tmp_path: Path) -> None:
    """Every step's command is parsed by its CLI's own parser (a typo fails here, on the CPU, not on the GPU), on a
    GPU with and without onnxruntime's CUDA provider and in the rehearsal, both tiers."""
    for target in targets(tmp_path):
        core, full = plan(target, CORE), plan(target, FULL)
        assert [s.name for s in core] == [s.name for s in full if s.tier == CORE]
        assert estimate(core) <= DEFAULT_BUDGET_S and any(s.optional for s in core)
        for step in full:
            _parse(step, target)
        onnx_full = any("export onnx" in s.name for s in full)
        assert onnx_full == target.onnx_on_cuda


def _parse(step: Step, target: Target) -> None:
    cmd = step.cmd
    if cmd[:3] == [sys.executable, "-m", "export"]:
        export_parser().parse_args(cmd[3:])
    elif cmd[:3] == [sys.executable, "-m", "parity"]:
        args = parity_parser().parse_args(cmd[3:])
        assert args.device == target.device
        assert (args.run_on == ["onnx=cpu"]) == (target.device == "cuda" and not target.onnx_on_cuda)
    elif cmd[:3] == [sys.executable, "-m", "benchmarks.mixed"]:
        args = mixed_parser().parse_args(cmd[3:])
        assert set(args.workloads.split(",")) <= set(MIXES) and args.device == target.device
        assert set(args.kinds.split(",")) <= set(BACKENDS) and args.precision == "bf16"
    elif cmd[:3] == [sys.executable, "-m", "benchmarks"]:
        args = bench_parser().parse_args(cmd[3:])
        assert set(args.workloads.split(",")) <= set(WORKLOADS) and args.device == target.device
    elif cmd[:3] == [sys.executable, "-m", "pytest"]:
        assert (ROOT / next(a for a in cmd if a.startswith("tests/"))).is_file()
    else:
        assert cmd[0] in ("bash", sys.executable), cmd


def _step(name: str, code: str, estimate_s: float = 1, optional: bool = False, outputs: tuple[Path, ...] = ()) -> Step:
    return Step(name, CORE, estimate_s, "bench", [sys.executable, "-c", code], 60, optional, outputs=outputs)


def _call(tmp_path: Path, steps: list[Step], budget_s: float, results: str = "results") -> Call:
    """A call whose results go to `results` (each call of the device tool gets a fresh one) and whose artifacts and
    state stay in one folder (as on one warm machine)."""
    target = Target("cpu", sys.executable, tmp_path / results, tmp_path / "arts")
    target.results.mkdir(parents=True, exist_ok=True)
    call = Call(target, CORE, budget_s, steps, {"torch": torch.__version__, "gpu": "test"})
    call.toolchain = {"nvcc": None, "cpp": "missing: planted"}
    return call


def test_budget_skips_what_would_not_fit_and_an_optional_step_never_crowds_out_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "made"
    steps = [
        _step("first", f"open({str(out)!r}, 'w').write('1')", estimate_s=10),
        _step("optional compile", "pass", estimate_s=50, optional=True),
        _step("needs the C++ toolchain", "pass", estimate_s=1),
        _step("last", "pass", estimate_s=30),
        _step("too long", "pass", estimate_s=500),
    ]
    steps[2].needs = ("cpp",)
    assert _call(tmp_path, steps, budget_s=60).run_all() == 0
    status = [s.status for s in steps]
    assert status[0] == "ok" and out.is_file()
    assert status[1] == "skipped: would not fit the budget: estimated 50 s + 531 s of the steps after it, 60 s left"
    assert status[2] == "skipped: missing: planted" and status[3] == "ok"
    assert status[4].startswith("skipped: would not fit the budget: estimated 500 s")
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert [s["status"] for s in summary["steps"]] == status


def test_a_failed_step_is_reported_and_the_next_ones_run(tmp_path: Path) -> None:
    steps = [_step("broken", "import sys; print('planted'); sys.exit(3)"), _step("after", "pass")]
    assert _call(tmp_path, steps, budget_s=100).run_all() == 1
    assert [s.status for s in steps] == ["failed (exit 3)", "ok"]
    assert "planted" in Path(steps[0].log).read_text()
    assert "failed: broken" in (tmp_path / "results" / "summary.md").read_text()


def test_second_call_reuses_what_the_first_made(tmp_path: Path) -> None:
    """A second call on the same machine, reporting into a fresh folder, reuses a step whose command and outputs are
    unchanged (and brings the first call's reports along); a changed command runs again."""
    made = tmp_path / "made.txt"
    code = f"import pathlib; p = pathlib.Path({str(made)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')"
    first = [_step("make it", code, outputs=(made,))]
    assert _call(tmp_path, first, 100, "first").run_all() == 0 and first[0].status == "ok"
    again = [_step("make it", code, outputs=(made,))]
    assert _call(tmp_path, again, 100, "second").run_all() == 0
    assert again[0].status.startswith("reused (done ") and made.read_text() == "x"
    assert (tmp_path / "second" / "logs" / Path(first[0].log).name).is_file()  # the first call's log came along
    changed = [_step("make it", code + "  # another command", outputs=(made,))]
    assert _call(tmp_path, changed, 100, "third").run_all() == 0 and changed[0].status == "ok"
    assert made.read_text() == "xx"


def test_summary_survives_a_cut_off(tmp_path: Path) -> None:
    """The call is killed in the middle of its second step (as the device tool's 10-minute limit would): the summary
    written before that step names the first as done and the second as unfinished."""
    script = tmp_path / "call.py"
    script.write_text(
        "import sys, torch\n"
        "from tools.gpu_check.plan import CORE, Step, Target\n"
        "from tools.gpu_check.run import Call\n"
        f"t = Target('cpu', sys.executable, __import__('pathlib').Path({str(tmp_path / 'results')!r}), "
        f"__import__('pathlib').Path({str(tmp_path / 'arts')!r}))\n"
        "t.results.mkdir(parents=True, exist_ok=True)\n"
        "steps = [Step('quick', CORE, 1, 'bench', [sys.executable, '-c', 'pass']),\n"
        "         Step('slow', CORE, 1, 'bench', [sys.executable, '-c', 'import time; time.sleep(60)'])]\n"
        "c = Call(t, CORE, 1000, steps, {'torch': torch.__version__, 'gpu': 'test'})\n"
        "c.toolchain = {}\n"
        "c.run_all()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, start_new_session=True)
    summary = tmp_path / "results" / "summary.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if summary.is_file() and "running" in json.loads(summary.read_text())["steps"][1]["status"]:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    steps = json.loads(summary.read_text())["steps"]
    assert steps[0]["status"] == "ok" and steps[1]["status"].startswith("running (a call cut off here")


def test_an_unbuildable_kind_skips_with_the_builders_reason(tiny_dir: Path, tmp_path: Path) -> None:
    """The shared artifact fixture builds what this machine can and skips the tests of a kind it cannot build with
    the builder's reason (on the GPU machine: OpenVINO, which it lacks), instead of erroring every test that uses
    it. Here OpenVINO is asked for CUDA, which its builder always refuses."""
    request = BuildRequest(tiny_dir, "fp32", [PROFILES["test-small"]], tmp_path, device="cuda", options={"quiet": True})
    arts = build_available(("onnx", "openvino"), request)
    assert set(arts) == {"onnx"} and arts["onnx"].is_file()
    with pytest.raises(pytest.skip.Exception, match="openvino: this machine cannot build it: "):
        arts["openvino"]


# -- the rehearsal, in the GPU machine's packages ---------------------------------------------------------------------

rehearsal = pytest.mark.skipif(
    not REHEARSAL_PY.is_file(), reason=f"no {REHEARSAL_PY.parent.parent.name} (make rehearsal-venv creates it)"
)


def _checkout_copy(tmp_path: Path) -> Path:
    """The checkout's files (tracked and new, not the ignored ones) in a folder of their own, to plant a defect in."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    copy = tmp_path / "checkout"
    for name in listed:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def _rehearse(copy: Path, steps: str) -> tuple[int, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(copy)}
    cmd = [str(REHEARSAL_PY), "-m", "tools.gpu_check", "run", "--rehearsal", "--steps", steps]
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=600, check=False)
    summary = json.loads((copy / "results" / "gpu-check" / "rehearsal" / "summary.json").read_text())
    return proc.returncode, summary


@rehearsal
def test_rehearsal_fails_on_a_planted_missing_package_import(tmp_path: Path) -> None:
    """A module the GPU steps import needs a package the GPU machine does not have (PyAV here, present in this
    venv): the rehearsal's export step fails and its log names the missing module. (Planted in the module every
    builder imports, so every kind fails at once instead of compiling the others first.)"""
    copy = _checkout_copy(tmp_path)
    target = copy / "export" / "pipeline.py"
    text = target.read_text()
    future = "from __future__ import annotations\n"
    assert future in text
    target.write_text(text.replace(future, future + "import av  # planted: PyAV is not on the GPU machine\n", 1))
    code, summary = _rehearse(copy, "checkpoints,tiny: export")
    steps = {s["name"]: s for s in summary["steps"]}  # type: ignore[attr-defined]
    assert code == 1
    failed = [s for name, s in steps.items() if name.startswith("tiny: export") and s["status"].startswith("failed")]
    assert failed, steps
    log = copy / "results" / "gpu-check" / "rehearsal" / "logs" / failed[0]["log"]
    assert "pt2: needs the Python package 'av', which is not installed here" in log.read_text()


@rehearsal
def test_rehearsal_fails_on_a_planted_wrong_step_argument(tmp_path: Path) -> None:
    """A step of the plan passes an option its command does not have: the rehearsal fails on that step."""
    copy = _checkout_copy(tmp_path)
    plan_file = copy / "tools" / "gpu_check" / "plan.py"
    text = plan_file.read_text()
    assert '"--no-progress"' in text
    plan_file.write_text(text.replace('"--no-progress"', '"--no-progress-bars"', 1))
    code, summary = _rehearse(copy, "checkpoints,parity: tiny")
    steps = {s["name"]: s for s in summary["steps"]}  # type: ignore[attr-defined]
    assert code == 1 and steps["checkpoints (synthetic tiny and full size)"]["status"] == "ok"
    parity = next(s for name, s in steps.items() if name.startswith("parity: tiny"))
    assert parity["status"] == "failed (exit 2)"
    log = (copy / "results" / "gpu-check" / "rehearsal" / "logs" / parity["log"]).read_text()
    assert "unrecognized arguments: --no-progress-bars" in log
