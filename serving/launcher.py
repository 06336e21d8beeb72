"""Start and stop the Triton Inference Server that ships in the `nvidia-pytriton` wheel, on a model repository.

The wheel holds `tritonserver` 2.51, its Python backend and one backend stub per Python version. This launcher
builds a backend folder for the running interpreter's version (links, nothing copied) and starts the server with
the environment it needs:

- LD_LIBRARY_PATH: the running interpreter's own library folder first. The stub links `libpython3.X.so.1.0`; where
  the system's libpython differs from the interpreter's (this machine: system 3.11.2, interpreter 3.11.7), the stub
  would run this interpreter's standard library on the other C runtime and fail in model initialisation
  (`'_thread.RLock' object has no attribute '_recursion_count'`). Then the wheel's own libraries.
- PATH: the interpreter's bin folder first, so the stub's embedded Python finds this environment's packages.
- PYTHONPATH: the bundle's root, so `model.py` imports `runtime` and `serving`.

Triton handles SIGINT/SIGTERM itself: it stops accepting requests, finishes those in flight (up to
`--exit-timeout-secs`), unloads the model and exits. `stop()` sends SIGINT; `kill()` is the crash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .artifacts import ServingError

BUNDLE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def pytriton_dist() -> Path:
    """The `tritonserver` folder inside the installed nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError:
        raise ServingError(
            "nvidia-pytriton is not installed: run `make venv` (it installs the pinned wheel) or "
            "`pip install --no-deps nvidia-pytriton==0.7.0`"
        ) from None
    dist = Path(pytriton.__file__).parent / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise ServingError(f"{dist}: no bin/tritonserver in the nvidia-pytriton wheel")
    return dist


def backend_dir(workspace: Path) -> Path:
    """`<workspace>/backends/python/` linking the wheel's Python backend and the stub of this Python version."""
    dist = pytriton_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServingError(f"nvidia-pytriton has no Python-backend stub for Python {version} ({stub})")
    folder = workspace / "backends" / "python"
    folder.mkdir(parents=True, exist_ok=True)
    for src in (dist / "backends" / "python").iterdir():
        if src.name != "__pycache__":
            (folder / src.name).symlink_to(src)
    (folder / stub.name).symlink_to(stub)
    return folder.parent


def server_env() -> dict[str, str]:
    """The server's environment (see the module docstring)."""
    env = dict(os.environ)
    libs = Path(pytriton_dist()).parent.parent / "nvidia_pytriton.libs"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BUNDLE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class TritonServer:
    """`with TritonServer(repo, ports) as server:` a running, ready server; leaving the block stops it gracefully."""

    def __init__(
        self,
        repository: str | os.PathLike[str],
        ports: Ports = Ports(),
        *,
        address: str = "127.0.0.1",
        exit_timeout_s: int = 30,
        log: str | os.PathLike[str] | None = None,
        verbose: int = 0,
    ):
        self.repository = Path(repository)
        self.ports = ports
        self.address = address
        self.exit_timeout_s = exit_timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="triton-")
        self.workspace = Path(self._tmp.name)
        self.log = Path(log) if log is not None else self.workspace / "tritonserver.log"
        self.verbose = verbose
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.address}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.address}:{self.ports.grpc}"

    def command(self) -> list[str]:
        return [
            str(pytriton_dist() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={backend_dir(self.workspace)}",
            f"--http-address={self.address}",
            f"--grpc-address={self.address}",
            f"--metrics-address={self.address}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--allow-metrics=true",
            "--allow-cpu-metrics=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.verbose}",
        ]

    def start(self, timeout_s: float = 120.0, stream_log: bool = False) -> TritonServer:
        """Start the server and wait until it reports ready (ServingError with the log's tail if it does not)."""
        out = None if stream_log else self.log.open("wb")
        self.process = subprocess.Popen(  # own session: signals reach Triton only through stop()
            self.command(), env=server_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServingError(
                    f"tritonserver exited with code {self.process.returncode} before it was ready:\n{self.log_tail()}"
                )
            if self.ready():
                return self
            time.sleep(0.2)
        self.kill()
        raise ServingError(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def ready(self) -> bool:
        """GET /v2/health/ready (server and every model ready)."""
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log captured)"

    def stop(self, timeout_s: float | None = None) -> int:
        """Graceful: SIGINT, Triton finishes in-flight requests and exits; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=timeout_s if timeout_s is not None else self.exit_timeout_s + 15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServingError(f"tritonserver did not exit within its timeout:\n{self.log_tail()}") from None
        return code

    def kill(self) -> None:
        """SIGKILL to the server's process group (a crash of tritonserver and its backend stubs, which would
        otherwise outlive it as orphans holding the model): clients see connection errors."""
        if self.process is not None:
            self._kill_group()
            self.process.wait()

    def _kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group start_new_session made: this server's only

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.stop()
            self._kill_group()  # nothing left after a graceful stop; after a crash, stray stubs
        self._tmp.cleanup()

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
