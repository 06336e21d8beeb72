"""kind "torchscript": a frozen, traced TorchScript module (`torch.jit.save`), loaded with `torch.jit.load`.

Device rule: a frozen TorchScript artifact names no device in its graph (the builder checks it; manifest.extra.movable
is true), so it **can move**: it loads onto any device with `map_location` (the weights are the graph's constants,
which `map_location` places), whatever device it was built on. The C++ runner (runtime/cpp) loads the same file with
`torch::jit::load(path, device)`.

Inputs reach the graph only after `runtime.validation.check_inputs` (profile, L = T*(H/14)*(W/14), dtype, ...): the
traced graph itself checks nothing. Calls run under no_grad; a TorchScript module's forward can be entered from
several threads at once (the graph executor synchronises its own specialisation), so the runner takes no lock.
"""

from __future__ import annotations

import torch

from ..base import LoadError, Runner
from .torch_export import first_tensor


class TorchScriptRunner(Runner):
    kind = "torchscript"
    thread_safe = True

    def _load(self) -> None:
        try:
            self._module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as exc:  # a file torch cannot parse: one line, not a deep trace
            raise LoadError(f"{self.path}: torch.jit.load failed: {type(exc).__name__}: {exc}") from None
        self._module.eval()
        self.provider = "torchscript"

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        return first_tensor(self._module(*inputs), str(self.path))
