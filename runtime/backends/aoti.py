"""kind "aoti": an AOTInductor package (`.pt2` from `torch._inductor.aoti_compile_and_package`).

Loaded with `torch._inductor.aoti_load_package`. A package is compiled for one device type, so it runs only there
(the device index may differ: `device="cuda:1"`); `runtime.load` refuses any other (runtime/loader.py `MOVABLE`).
The package's model container synchronises concurrent runs itself (run_single_threaded=False), so the runner takes
no lock. The C++ runner (runtime/cpp) loads the same file
through `torch::inductor::AOTIModelPackageLoader`.
"""

from __future__ import annotations

import torch

from ..base import LoadError, Runner
from .torch_export import first_tensor


class AOTIRunner(Runner):
    kind = "aoti"
    thread_safe = True

    def _load(self) -> None:
        built_for = torch.device(self.manifest.device).type
        index = self.device.index if self.device.type == "cuda" and self.device.index is not None else -1
        try:
            from torch._inductor import aoti_load_package

            self._model = aoti_load_package(str(self.path), device_index=index)
        except Exception as exc:  # a package that does not load: one line, not a deep trace
            raise LoadError(f"{self.path}: aoti_load_package failed: {type(exc).__name__}: {exc}") from None
        self.provider = f"aoti-{built_for}"

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        return first_tensor(self._model(*inputs), str(self.path))
