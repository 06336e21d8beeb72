"""Wall time, peak resident memory and stage lines of one build.

Peak RSS is measured per build on Linux: the kernel's high-water mark (VmHWM) is reset through
/proc/self/clear_refs when the build starts and read when it ends. Where that is not possible the process-lifetime
peak (getrusage) is reported instead, and `peak_rss_scope` says so. The reset also restarts the process's own
getrusage peak, so code that reads ru_maxrss in the same process after a build sees the peak since that build.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import TextIO

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_mib() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # "5" resets the peak RSS counter (Linux >= 4.0)
    except OSError:
        return False
    return _vm_hwm_mib() is not None


def _process_peak_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


class BuildMeter:
    """Start on construction; `stage(name)` prints one progress line and times the stage it opens."""

    def __init__(self, kind: str, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.kind = kind
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.scope = "build" if _reset_peak() else "process"
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}
        self._open: tuple[str, float] | None = None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def peak_rss_mib(self) -> float:
        peak = _vm_hwm_mib() if self.scope == "build" else None
        return round(peak if peak is not None else _process_peak_mib(), 1)

    def stage(self, name: str, detail: str = "") -> None:
        self._close()
        self._open = (name, time.perf_counter())
        self.say(f"{name}{': ' + detail if detail else ''}")

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.kind} {self.seconds:6.1f}s] {text}", file=self.stream, flush=True)

    def _close(self) -> None:
        if self._open is not None:
            name, started = self._open
            self.stages[name] = round(time.perf_counter() - started, 3)
            self._open = None

    def finish(self) -> dict[str, object]:
        """The manifest's `build` block: seconds, peak_rss_mib (and its scope) and per-stage seconds."""
        self._close()
        return {
            "seconds": round(self.seconds, 3),
            "peak_rss_mib": self.peak_rss_mib(),
            "peak_rss_scope": self.scope,
            "stages": dict(self.stages),
        }
