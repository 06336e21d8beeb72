"""What the suite tests: artifacts found on disk (through runtime.load), exported on the fly, or eager stand-ins.

`ArtifactUnderTest` is the one shape everything is brought into: a name, kind, precision, profile, the number of
encoder layers its output is taken after, a lazily loaded runner `run(pixel_values, patch_positions)` (a packed
artifact: `run_packed(items)`, one list of one-sample items through `runner.run_packed`), and, when not runnable
here, the reason it is skipped.

Eager stand-ins run the bundle's one eager runner (`models.eager.EagerRunner`, optionally with a planted defect):
the suite's own tests use them, and `--artifacts eager-fp32,eager-bf16` runs the eager model through the whole suite
as if it were an artifact (a self-check of the pipeline: it must pass against every reference).

Every artifact run and every eager stand-in computes inside `models.tf32.exact_float32()` (no TF32), like the
references they are compared with.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.backends import BACKENDS
from contract.manifest import SUFFIX, Manifest, ManifestError, read_manifest
from contract.profiles import MIN_TOKENS, PackedProfile, Profile, ShapeProfile, profile_from_dict
from models import InputError, OneVisionEncoderConfig, layers_for_output
from models.eager import EagerRunner
from models.tf32 import exact_float32

from .references import DTYPES

EAGER_KINDS = ("eager-fp32", "eager-bf16", "eager-fp16")


@dataclass
class ArtifactUnderTest:
    name: str
    kind: str  # pt2 | aoti | onnx | trt | eager
    precision: str
    profile: Profile | None  # a PackedProfile: a packed artifact (run_packed)
    num_layers: int  # encoder layers the output is taken after
    path: Path | None = None
    device: str = "cpu"
    min_tokens: int = MIN_TOKENS
    manifest: Manifest | None = None
    skip_reason: str | None = None  # not runnable here: reported as skipped, never a failure
    error: str | None = None  # broken (bad manifest, does not load): a failure
    warnings: list[str] = field(default_factory=list)
    loader: Callable[[], Any] | None = None  # returns the runner; called once, lazily
    _runner: Any = None

    @property
    def runner(self) -> Any:
        if self._runner is None:
            if self.loader is None:
                raise RuntimeError(f"{self.name}: nothing to load")
            self._runner = self.loader()
        return self._runner

    @property
    def input_dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    @property
    def packed(self) -> bool:
        """A packed artifact: it runs the packed cases (`run_packed`), not the batched ones."""
        return isinstance(self.profile, PackedProfile)

    def run(self, pixel_values: torch.Tensor, patch_positions: torch.Tensor) -> torch.Tensor:
        runner = self.runner  # loaded outside: loading is not a comparison
        with exact_float32():
            out = runner(pixel_values.to(self.input_dtype), patch_positions)
            return out.detach().to("cpu")

    def packed_items(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(pixel_values, patch_positions) of one-sample items in the artifact's input dtype."""
        return [(pv.to(self.input_dtype), pos) for pv, pos in items]

    def run_packed(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """One-sample items (pixel_values (1, 3, T, H, W), patch_positions (1, L, 3)) run as one list by a packed
        artifact (`runner.run_packed`: the runtime checks them and plans the calls) -> one (1, L, hidden) output per
        item, on the CPU."""
        runner = self.runner
        with exact_float32():
            outs = runner.run_packed(self.packed_items(items))
            return [out.detach().to("cpu") for out in outs]

    def packed_calls(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> list[list[int]]:
        """The item indices of each call the runtime makes for these items (`runner.plan_packed`)."""
        return [call for call, _ in self.runner.plan_packed(self.packed_items(items))]

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and hasattr(runner, "close"):
            runner.close()
        del runner
        gc.collect()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "precision": self.precision,
            "profile": self.profile.name if self.profile else None,
            "num_layers": self.num_layers,
            "path": str(self.path) if self.path else None,
            "device": self.device,
            "sha256": self.manifest.sha256 if self.manifest else None,
            "skip_reason": self.skip_reason,
            "error": self.error,
            "warnings": list(self.warnings),
        }


def eager_artifact(
    model_dir: str | Path,
    precision: str,
    device: str,
    profile: ShapeProfile | None = None,
    name: str | None = None,
    perturb: Callable[[Any], None] | None = None,
    attention: str = "sdpa",
    num_layers: int | None = None,
) -> ArtifactUnderTest:
    """The eager model as an artifact (no profile: any shape, 1 token included)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    layers = num_layers or int(config["num_hidden_layers"])

    def load() -> EagerRunner:
        return EagerRunner.load(model_dir, DTYPES[precision], attention, device, layers, perturb=perturb)

    return ArtifactUnderTest(
        name=name or f"eager-{precision}",
        kind="eager",
        precision=precision,
        profile=profile,
        num_layers=layers,
        device=device,
        min_tokens=1 if profile is None else MIN_TOKENS,
        loader=load,
    )


def _layers_run(manifest: Manifest, total: int) -> int:
    layers = manifest.extra.get("layers_run") if isinstance(manifest.extra, dict) else None
    if isinstance(layers, int):
        return layers
    return layers_for_output(manifest.output_layer, total)


def from_file(
    path: Path,
    config: OneVisionEncoderConfig,
    weights_sha: str,
    device: torch.device,
    run_on: dict[str, str] | None = None,
) -> ArtifactUnderTest:
    """An artifact on disk: manifest read and checked (sha256), runnability decided, runner loaded lazily.

    Where it runs: a kind that moves between devices runs on the suite's `device`, or on `run_on[kind]` when the
    caller names another (`--run-on onnx=cpu`: onnxruntime without its CUDA provider on a GPU machine); a kind that
    does not move runs where it was built."""
    name = path.name
    try:
        manifest = read_manifest(path, verify=True)
    except ManifestError as exc:
        return ArtifactUnderTest(name, "?", "?", None, 0, path=path, error=str(exc))
    try:
        profile: Profile | None = profile_from_dict(manifest.profile)
    except ValueError as exc:
        return ArtifactUnderTest(name, manifest.kind, manifest.precision, None, 0, path, error=f"bad profile: {exc}")
    try:
        layers = _layers_run(manifest, config.num_hidden_layers)
    except InputError as exc:
        return ArtifactUnderTest(name, manifest.kind, manifest.precision, profile, 0, path, error=f"manifest: {exc}")
    art = ArtifactUnderTest(
        name=name,
        kind=manifest.kind,
        precision=manifest.precision,
        profile=profile,
        num_layers=layers,
        path=path,
        manifest=manifest,
        # A packed item may be one token (a call packs it with others: the call's minimum is the profile's).
        min_tokens=1 if isinstance(profile, PackedProfile) else MIN_TOKENS,
    )
    # Which device it runs on: compiled kinds (and artifacts whose manifest says extra.movable false) run where they
    # were built; pt2/onnx/torchscript follow the suite's device.
    built_for = torch.device(manifest.device).type
    described = BACKENDS.get(manifest.kind)
    pinned = described is None or not described.movable or manifest.extra.get("movable") is False
    run_on_device = built_for if pinned else (run_on or {}).get(manifest.kind, device.type)
    art.device = run_on_device
    if run_on_device == "cuda" and not torch.cuda.is_available():
        what = f"{described.label} built for CUDA" if described else f"{manifest.kind} artifact built for CUDA"
        art.skip_reason = f"{what}: needs a CUDA GPU, none here"
        return art
    if manifest.precision not in DTYPES:
        art.error = f"unknown precision {manifest.precision!r}"
        return art
    # Built from this checkpoint? Another architecture cannot be compared; other weights are worth a warning.
    source = manifest.source if isinstance(manifest.source, dict) else {}
    src_config = source.get("config") or {}
    arch = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size")
    diffs = [
        f"{k} {src_config.get(k)} != {getattr(config, k)}"
        for k in arch
        if src_config.get(k, getattr(config, k)) != getattr(config, k)
    ]
    if diffs:
        art.skip_reason = (
            f"built from another checkpoint ({source.get('checkpoint', '?')}: {', '.join(diffs)}); "
            "pass --model <that checkpoint> to test it"
        )
        return art
    src_sha = source.get("weights_sha256")
    if src_sha and src_sha != weights_sha:
        art.warnings.append(
            f"built from other weights than the reference checkpoint (source {source.get('checkpoint', '?')}, "
            f"weights sha256 {str(src_sha)[:12]}... vs {weights_sha[:12]}...)"
        )

    def load() -> Any:
        import runtime

        return runtime.load(path, device=run_on_device, verify=False)

    art.loader = load
    return art


def discover(artifacts_dir: Path) -> list[Path]:
    """Artifact files (with a manifest beside them) in a folder, sorted by name."""
    if not artifacts_dir.is_dir():
        return []
    suffixes = set(SUFFIX.values())
    found = [
        p
        for p in artifacts_dir.iterdir()
        if p.is_file() and p.suffix in suffixes and p.with_name(p.name + ".json").is_file()
    ]
    return sorted(found)


def select(paths: list[Path], spec: str | None, artifacts_dir: Path) -> tuple[list[Path], list[str], list[str]]:
    """Filter by --artifacts: each item is a path, a file name in the folder, a name prefix ('pt2', 'onnx-fp32'),
    or an eager stand-in (eager-fp32, eager-bf16). Returns (paths, eager names, unmatched items)."""
    if not spec:
        return paths, [], []
    chosen: list[Path] = []
    eager: list[str] = []
    unmatched: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in EAGER_KINDS:
            eager.append(item)
            continue
        as_path = Path(item)
        if as_path.is_file():
            chosen.append(as_path)
            continue
        if (artifacts_dir / item).is_file():
            chosen.append(artifacts_dir / item)
            continue
        hits = [p for p in paths if p.name == item or p.name.startswith(item + "-") or p.name.startswith(item + ".")]
        if hits:
            chosen.extend(h for h in hits if h not in chosen)
        else:
            unmatched.append(item)
    return chosen, eager, unmatched
