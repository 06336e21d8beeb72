"""kind "pt2": a torch.export ExportedProgram (`torch.export.save`), loaded with `torch.export.load`.

The program runs as its unlifted module (`ExportedProgram.module()`), moved to the runner's device; it holds no
state that a call mutates, so concurrent calls need no lock.
"""

from __future__ import annotations

from typing import Any

import torch

from ..base import LoadError, Runner


def first_tensor(out: Any, what: str) -> torch.Tensor:
    """The output tensor of a program returning a tensor or a one-element tuple/list."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise LoadError(f"{what} returned {type(out).__name__}, expected last_hidden_state as a tensor")
    return out


class TorchExportRunner(Runner):
    kind = "pt2"
    thread_safe = True

    def _load(self) -> None:
        try:
            program = torch.export.load(str(self.path))
        except Exception as exc:  # a file torch cannot parse: one line, not a deep trace
            raise LoadError(f"{self.path}: torch.export.load failed: {type(exc).__name__}: {exc}") from None
        module = program.module()
        self._module = module.to(self.device) if self.device.type != "cpu" else module
        self.provider = "torch"

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        return first_tensor(self._module(*inputs), str(self.path))
