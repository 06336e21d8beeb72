"""One call of the plan: steps in order, each within what is left of the budget, its log and the summary written as it
goes, a step done by an earlier call on the same machine reused, a failed step reported and the next ones run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from . import summary
from .plan import Step, Target
from .preflight import ROOT
from .state import State, slug, step_key

GRACE_S = 60  # a running step may overrun the budget by this much before it is stopped


class Call:
    def __init__(self, target: Target, tier: str, budget_s: float, steps: list[Step], info: dict[str, Any]) -> None:
        self.target, self.tier, self.budget_s, self.steps, self.info = target, tier, budget_s, steps, info
        self.started = time.monotonic()
        self.state = State(target.artifacts / "state")
        self.logs = target.results / "logs"
        self.toolchain: dict[str, str | None] = {}
        self.env: dict[str, str] = {}

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def write_summary(self, note: str = "") -> None:
        call = {"tier": self.tier, "budget_s": self.budget_s, "elapsed_s": self.elapsed, "note": note}
        call["state"] = str(self.state.folder)
        summary.write(self.target.results, self.target, self.steps, self.info, call, self.toolchain)
        self.state.mirror_reports(self.target.results)

    def skip_reason(self, index: int) -> str | None:
        """Why step `index` does not run now (a missing tool, or it would not fit the budget), or None."""
        step = self.steps[index]
        missing = [self.toolchain[n] for n in step.needs if self.toolchain.get(n)]
        if missing:
            return str(missing[0])
        left = self.budget_s - self.elapsed
        after = sum(s.estimate_s for s in self.steps[index + 1 :] if not s.optional) if step.optional else 0.0
        if step.estimate_s + after > left:
            extra = f" + {after:.0f} s of the steps after it" if after else ""
            return f"would not fit the budget: estimated {step.estimate_s:.0f} s{extra}, {max(left, 0):.0f} s left"
        return None

    def run(self, index: int) -> None:
        step = self.steps[index]
        reason = self.skip_reason(index)
        if reason:
            step.status = f"skipped: {reason}"
            print(f"[{index + 1}/{len(self.steps)}] {step.name}: {step.status}", flush=True)
            return
        key = step_key(step, str(self.info.get("torch")))
        done = self.state.reusable(step, key)
        if done:
            step.status = f"reused (done {done})"
            print(f"[{index + 1}/{len(self.steps)}] {step.name}: {step.status}", flush=True)
            return
        timeout = min(step.timeout_s, max(self.budget_s - self.elapsed, 0) + GRACE_S)
        step.status = "running (a call cut off here left this step unfinished)"
        self.write_summary("running")
        execute(step, self.logs / f"{index + 1:02d}-{slug(step.name)}.log", {**self.env, **step.env}, timeout)
        print(f"[{index + 1}/{len(self.steps)}] {step.name}: {step.status} in {step.seconds:.0f} s", flush=True)
        if step.status != "ok":
            print("\n".join("    " + line for line in Path(step.log).read_text(errors="replace").splitlines()[-12:]))
        self.state.record(step, key)

    def run_all(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state.restore_reports(self.target.results)
        self.write_summary("running")
        for i in range(len(self.steps)):
            print(f"[{i + 1}/{len(self.steps)}] {self.steps[i].name} ...", flush=True)
            self.run(i)
            self.write_summary("running")
        failed = [s.name for s in self.steps if failing(s)]
        self.write_summary("finished" + (f"; failed: {', '.join(failed)}" if failed else ""))
        ran = sum(1 for s in self.steps if s.status == "ok" or s.status.startswith("reused"))
        tail = f"; failed: {', '.join(failed)}" if failed else ""
        print(f"gpu-check: {ran}/{len(self.steps)} steps ok or reused in {self.elapsed:.0f} s{tail}")
        return 1 if failed else 0


def failing(step: Step) -> bool:
    return step.status.startswith(("failed", "timeout"))


def execute(step: Step, log: Path, env: dict[str, str], timeout: float) -> None:
    step.log = str(log)
    start = time.perf_counter()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    full_env.setdefault("TQDM_MININTERVAL", "10")
    with log.open("w") as f:
        f.write(f"$ {step.command}\n\n")
        f.flush()
        try:
            proc = subprocess.run(
                step.cmd, cwd=ROOT, env=full_env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
            step.status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            step.status = f"timeout (stopped after {timeout:.0f} s)"
    step.seconds = time.perf_counter() - start
