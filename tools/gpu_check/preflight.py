"""What a call checks before any step runs: the machine (environment.json) and the toolchain the steps need.

The toolchain checks name what is missing in one line each, and the paths they find are passed to the steps:
- `nvcc`: the CUDA toolkit (CUDA_HOME, or nvcc on PATH or in /usr/local/cuda): AOTInductor's CUDA compiles need it,
  and CUDA libtorch's CMake config stops without it. Passed as CUDA_HOME and -DCUDAToolkit_ROOT.
- `cpp`: what the C++ runner builds with: cmake, a C++ compiler, nlohmann/json.hpp and OpenSSL's libcrypto with
  its headers. Found in the usual places, or in `.gpu-deps/include` (`make gpu-check-deps` copies the headers there
  on a machine that has them; carry that folder to a machine that has not). Passed as NLOHMANN_JSON_INCLUDE_DIR and
  ONEVISION_CMAKE_ARGS (-DOPENSSL_INCLUDE_DIR / -DOPENSSL_CRYPTO_LIBRARY when the headers are not the system's).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import importlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPS_INCLUDE = ROOT / ".gpu-deps" / "include"
SYSTEM_INCLUDES = (Path("/usr/include"), Path("/usr/local/include"))
LIB_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libcrypto.so*",
    "/lib/x86_64-linux-gnu/libcrypto.so*",
    "/usr/lib64/libcrypto.so*",
)
PACKAGES = ("torch", "transformers", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "safetensors", "numpy")


def environment(device: str) -> dict[str, Any]:
    """The machine as the reports describe it (no GPU query on the CPU rehearsal)."""
    import torch

    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch_cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "device": device,
    }
    for name in PACKAGES:
        try:
            info[name] = str(importlib.import_module(name).__version__)
        except ImportError:
            info[name] = None
    try:
        import onnxruntime

        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        info["onnxruntime_providers"] = []
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["nvidia_smi"] = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    else:
        info["gpu"] = "none (CPU rehearsal)"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def find_nvcc() -> Path | None:
    """The CUDA toolkit's root (the folder holding bin/nvcc), or None."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    on_path = shutil.which("nvcc")
    candidates += [str(Path(on_path).resolve().parent.parent) if on_path else None, "/usr/local/cuda"]
    for root in filter(None, candidates):
        if (Path(root) / "bin" / "nvcc").is_file():
            return Path(root)
    return None


def find_nlohmann() -> Path | None:
    """A folder holding nlohmann/json.hpp."""
    candidates = [os.environ.get("NLOHMANN_JSON_INCLUDE_DIR")]
    with contextlib.suppress(ImportError, AttributeError):
        candidates.append(str(importlib.import_module("nlohmann_json").get_include()))
    candidates += [str(DEPS_INCLUDE), *map(str, SYSTEM_INCLUDES)]
    for folder in filter(None, candidates):
        if (Path(folder) / "nlohmann" / "json.hpp").is_file():
            return Path(folder)
    return None


def find_openssl() -> tuple[Path | None, Path | None]:
    """(folder holding openssl/evp.h, libcrypto shared library)."""
    roots = [os.environ.get("OPENSSL_ROOT_DIR")]
    headers = next(
        (Path(f) for f in [*(f"{r}/include" for r in roots if r), str(DEPS_INCLUDE), *map(str, SYSTEM_INCLUDES)]
         if (Path(f) / "openssl" / "evp.h").is_file()),
        None,
    )  # fmt: skip
    libs = sorted(p for pattern in LIB_GLOBS for p in glob.glob(pattern))
    return headers, Path(libs[0]) if libs else None


def toolchain(device: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """(capability -> None when present, else one line naming what is missing; environment for the steps)."""
    missing: dict[str, str | None] = {"nvcc": None, "cpp": None}
    env: dict[str, str] = {}
    cmake_args: list[str] = []
    if device == "cuda":
        cuda = find_nvcc()
        if cuda is None:
            missing["nvcc"] = (
                "no CUDA toolkit: nvcc is not on PATH, in $CUDA_HOME or in /usr/local/cuda (AOTInductor's CUDA "
                "compiles and CUDA libtorch's CMake config need it)"
            )
        else:
            env["CUDA_HOME"] = str(cuda)
            env["PATH"] = f"{cuda / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
            cmake_args.append(f"-DCUDAToolkit_ROOT={cuda}")
    gaps = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    json_dir = find_nlohmann()
    if json_dir is None:
        gaps.append("nlohmann/json.hpp (pip install nlohmann-json, or carry .gpu-deps from `make gpu-check-deps`)")
    else:
        env["NLOHMANN_JSON_INCLUDE_DIR"] = str(json_dir)
    headers, libcrypto = find_openssl()
    if headers is None or libcrypto is None:
        what = "openssl/evp.h" if headers is None else "libcrypto.so"
        gaps.append(f"OpenSSL's {what} (libssl-dev, or .gpu-deps from `make gpu-check-deps` for the headers)")
    elif headers not in SYSTEM_INCLUDES:
        cmake_args += [f"-DOPENSSL_INCLUDE_DIR={headers}", f"-DOPENSSL_CRYPTO_LIBRARY={libcrypto}"]
    if device == "cuda" and missing["nvcc"]:
        gaps.append("the CUDA toolkit (see nvcc)")
    if gaps:
        missing["cpp"] = "the C++ runner cannot be built here: missing " + "; ".join(gaps)
    env["ONEVISION_CMAKE_ARGS"] = " ".join(cmake_args)
    return missing, env
