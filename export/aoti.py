"""Kind "aoti": an AOTInductor package (.pt2) compiled ahead of time for the CPU, or for CUDA with --device cuda.

Load it with `torch._inductor.aoti_load_package(path)` (same torch version as `manifest.extra["requires_torch"]`)
and call it with (pixel_values, patch_positions) on `manifest.device`. CPU packages need a C++ compiler to build,
CUDA packages a CUDA GPU.
"""

from __future__ import annotations

import shutil
import subprocess

import torch
import torch._inductor

from models.tf32 import exact_float32

from .base import BuildRequest, BuildResult
from .inputs import example_facts
from .pipeline import BuildContext, Produced, load_and_export, run_build
from .torch_export import cuda_missing
from .verify import verify_artifact

COMPILERS = ("g++", "c++", "clang++")


def cxx_compiler() -> str | None:
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _compiler_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return path
    return out.splitlines()[0] if out else path


def default_inductor_configs(device: str, capability: str | None = None) -> dict[str, object]:
    """CPU: freezing (constant folding), and oneDNN weight prepacking only on a CPU with AVX-512 (`capability`:
    torch.backends.cpu.get_cpu_capability() of the building machine, which the package runs on).

    Measured full size fp32, 1 x 448², 2 cores (README "AOTInductor on an AVX2 CPU"): with AVX-512 the prepacked
    package ran 2.3 s against eager's 3.7 s. With the CPU capped at AVX2 (ATEN_CPU_CAPABILITY=avx2,
    ONEDNN_MAX_CPU_ISA=AVX2) prepacking turns every linear into oneDNN's brg_matmul:avx2 inner product, 18.3 s of a
    25.2 s forward under oneDNN/MKL verbose timing, where eager's MKL sgemm takes 10.7 s: the package ran 0.85x eager in
    two interleaved runs; without prepacking it calls MKL sgemm as eager does and ran 1.03x and 1.05x. Adding
    max_autotune made bf16 slower (4.8 s against 1.25 s). Callers override through options["inductor_configs"]."""
    if device != "cpu":
        return {}
    capability = capability or torch.backends.cpu.get_cpu_capability()
    return {"freezing": True, "cpp.weight_prepack": capability.startswith("AVX512")}


class AOTInductorBuilder:
    kind = "aoti"

    def unavailable(self, request: BuildRequest) -> str | None:
        missing = cuda_missing(request, "an AOTInductor CUDA package")
        if missing:
            return missing
        if cxx_compiler() is None:
            return f"AOTInductor needs a C++ compiler ({', '.join(COMPILERS)}) on PATH, none found"
        return None

    def build(self, request: BuildRequest) -> BuildResult:
        return run_build(self.kind, request, self.unavailable, self._produce)

    def _produce(self, ctx: BuildContext) -> Produced:
        request, meter = ctx.request, ctx.meter
        wrapper, program = load_and_export(ctx, self.kind)
        meter.stage("aoti compile", f"AOTInductor for {request.device} (C++ compile, takes a while)")
        configs = {**default_inductor_configs(request.device), **request.options.get("inductor_configs", {})}
        # Inductor reads the TF32 flags when it generates matmul kernels: compile without TF32, so an fp32 package
        # computes in fp32 whatever the building process had set.
        with torch.no_grad(), exact_float32():
            torch._inductor.aoti_compile_and_package(program, package_path=str(ctx.staged), inductor_configs=configs)
        meter.stage("verify", "aoti_load_package, run at the profile's min shape against eager")
        runner = torch._inductor.aoti_load_package(str(ctx.staged))
        verify = verify_artifact(self.kind, runner, wrapper, request.profile, request.precision, request.device)
        compiler = cxx_compiler()
        extra = {
            "loader": "torch._inductor.aoti_load_package(path)",
            "requires_torch": torch.__version__,
            "compiler": _compiler_version(compiler) if compiler else None,
            "inductor_configs": configs,
            "cpu_capability": torch.backends.cpu.get_cpu_capability() if request.device == "cpu" else None,
            "tf32": False,
            **example_facts(request.profile),
        }
        return Produced(extra=extra, build={"verify": verify})
