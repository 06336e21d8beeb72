"""What survives between calls on one warm machine: per step, what it was run with and whether it succeeded, and a
mirror of every report, under `<artifacts>/state/` (beside the artifacts, not under RESULTS: each call may point
RESULTS at a fresh folder, the one that comes back).

A step is reused by a later call when it succeeded with the same key and its outputs are still there. The key is a
hash of its command, the torch version and the weights sha256 of every checkpoint it reads (an artifact's kind,
precision and profile are in its command).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

from .plan import Step


@cache
def weights(model: str) -> str:
    """sha256 of a checkpoint's weights ("" when it does not exist yet)."""
    from models.checkpoint import weights_sha256

    try:
        return weights_sha256(model)
    except (OSError, ValueError):
        return ""


def step_key(step: Step, torch_version: str) -> str:
    data = {"cmd": step.cmd, "env": step.env, "torch": torch_version, "weights": {m: weights(m) for m in step.models}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]


class State:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reports = folder / "reports"
        folder.mkdir(parents=True, exist_ok=True)

    def _marker(self, step: Step) -> Path:
        return self.folder / f"{slug(step.name)}.json"

    def reusable(self, step: Step, key: str) -> str | None:
        """When the step last succeeded with this key (its outputs still present), else None."""
        marker = self._marker(step)
        if not step.outputs or not marker.is_file():
            return None
        data: dict[str, Any] = json.loads(marker.read_text())
        if data.get("status") != "ok" or data.get("key") != key or not all(p.exists() for p in step.outputs):
            return None
        return str(data.get("finished", "an earlier call"))

    def record(self, step: Step, key: str) -> None:
        data = {"name": step.name, "status": step.status, "key": key, "seconds": round(step.seconds, 1)}
        data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self._marker(step).write_text(json.dumps(data, indent=2) + "\n")

    def restore_reports(self, results: Path) -> None:
        """Reports of earlier calls into this call's results folder (this call's own files win)."""
        if self.reports.is_dir() and self.reports.resolve() != results.resolve():
            shutil.copytree(self.reports, results, dirs_exist_ok=True, copy_function=_copy_if_absent)

    def mirror_reports(self, results: Path) -> None:
        if results.resolve() != self.reports.resolve():
            shutil.copytree(results, self.reports, dirs_exist_ok=True)


def _copy_if_absent(src: str, dst: str) -> None:
    if not Path(dst).exists():
        shutil.copy2(src, dst)
