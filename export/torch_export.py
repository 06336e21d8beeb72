"""Kind "pt2": a torch.export ExportedProgram saved with torch.export.save (fp32, bf16 or fp16 weights).

Load it with `torch.export.load(path).module()`; the module takes pixel_values (B, 3, T, H, W) in the artifact's
precision and patch_positions (B, L, 3) int64, on the manifest's device.
"""

from __future__ import annotations

import torch

from .base import BuildRequest, BuildResult
from .inputs import example_facts
from .pipeline import BuildContext, Produced, load_and_export, run_build
from .verify import verify_artifact


def cuda_missing(request: BuildRequest, what: str) -> str | None:
    if request.device == "cuda" and not torch.cuda.is_available():
        return f"{what} for --device cuda needs a CUDA GPU, and torch.cuda.is_available() is False on this machine"
    return None


class TorchExportBuilder:
    kind = "pt2"

    def unavailable(self, request: BuildRequest) -> str | None:
        return cuda_missing(request, "a torch.export program")

    def build(self, request: BuildRequest) -> BuildResult:
        return run_build(self.kind, request, self.unavailable, self._produce)

    def _produce(self, ctx: BuildContext) -> Produced:
        request, meter = ctx.request, ctx.meter
        wrapper, program = load_and_export(ctx, self.kind)
        meter.stage("save", "torch.export.save")
        torch.export.save(program, ctx.staged)
        meter.stage("verify", "torch.export.load round trip, run at the profile's min shape against eager")
        loaded = torch.export.load(ctx.staged).module()
        verify = verify_artifact(self.kind, loaded, wrapper, request.profile, request.precision, request.device)
        extra = {
            "loader": "torch.export.load(path).module()",
            **example_facts(request.profile),
            "range_constraints": {str(k): str(v) for k, v in program.range_constraints.items()},
        }
        return Produced(extra=extra, build={"verify": verify})
