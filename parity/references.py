"""Eager PyTorch references (and the float64 golden) for every case input, computed once and cached.

References, by name:
- golden-fp64: the eager model in float64 (sdpa; in float64 eager and sdpa attention agree to ~1e-15). Every other
  output's "inherent error" is its distance to this; the pass rule is calibrated on it (parity/tolerances.py).
- sdpa-fp32, sdpa-bf16 (and sdpa-fp16 when an fp16 artifact needs calibrating): the exported math
  (`scaled_dot_product_attention`).
- eager-fp32, eager-bf16: upstream's exact numerics ("eager" attention: softmax in the input dtype).
- remote-fp32, remote-bf16 (`--remote-reference`, off by default): the checkpoint's own remote modeling code
  (`modeling_onevision_encoder.py` beside config.json), loaded as `AutoModel.from_pretrained(dir,
  trust_remote_code=True)` would (see `load_remote_model` for why the classes are resolved explicitly). It runs
  code shipped with the checkpoint: only use it on checkpoints you trust.

All run on the suite's device (CUDA when present, else the CPU), float32 without TF32 (`models.tf32`). Models
are loaded one dtype at a time and freed after the reference pass; the per-layer hidden states the localiser needs
are recomputed on demand.
"""

from __future__ import annotations

import gc
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.dtypes import DTYPES as PRECISION_DTYPES
from models.eager import EagerRunner
from models.tf32 import exact_float32

from .cases import CaseInput
from .reference_cache import ReferenceCache

DTYPES = {"fp64": torch.float64, **PRECISION_DTYPES}
GOLDEN = "golden-fp64"
REMOTE_MODELING = "modeling_onevision_encoder.py"


@dataclass(frozen=True)
class RefSpec:
    name: str
    precision: str  # fp64 | fp32 | bf16 | fp16
    attention: str  # sdpa | eager | remote
    label: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    @property
    def remote(self) -> bool:
        return self.attention == "remote"


REFERENCES: dict[str, RefSpec] = {
    s.name: s
    for s in (
        RefSpec(GOLDEN, "fp64", "sdpa", "eager model in float64 (the golden the rule is calibrated on)"),
        RefSpec("sdpa-fp32", "fp32", "sdpa", "eager model, sdpa attention (the exported math), float32"),
        RefSpec("sdpa-bf16", "bf16", "sdpa", "eager model, sdpa attention (the exported math), bfloat16"),
        RefSpec("sdpa-fp16", "fp16", "sdpa", "eager model, sdpa attention, float16 (calibrates fp16 artifacts)"),
        RefSpec("eager-fp32", "fp32", "eager", "eager model, eager attention (upstream's numerics), float32"),
        RefSpec("eager-bf16", "bf16", "eager", "eager model, eager attention (upstream: softmax in bf16), bfloat16"),
        RefSpec("remote-fp32", "fp32", "remote", "the checkpoint's own remote code (trust_remote_code), float32"),
        RefSpec("remote-bf16", "bf16", "remote", "the checkpoint's own remote code (trust_remote_code), bfloat16"),
    )
}
DEFAULT_REFERENCES = ("sdpa-fp32", "sdpa-bf16", "eager-fp32", "eager-bf16")
# CPU + full-size model: eager attention in fp32 equals sdpa in fp32 to ~1e-6 and costs 40% more than sdpa: dropped.
CPU_FULL_SIZE_REFERENCES = ("sdpa-fp32", "sdpa-bf16", "eager-bf16")


class ReferenceError(RuntimeError):
    """A reference cannot be computed (e.g. --remote-reference on a checkpoint without remote code)."""


def calibration_name(precision: str) -> str:
    """The reference whose distance to the golden is the inherent error of `precision`."""
    return GOLDEN if precision == "fp64" else f"sdpa-{precision}"


def parse_references(spec: str | None, default: Iterable[str]) -> list[str]:
    if spec is None or spec in ("", "auto"):
        names = list(default)
    elif spec == "all":
        names = [n for n in REFERENCES if not REFERENCES[n].remote and n != "sdpa-fp16" and n != GOLDEN]
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown:
        raise ValueError(f"unknown reference(s) {', '.join(unknown)}; known: {', '.join(REFERENCES)}")
    return [n for n in names if n != GOLDEN]


def has_remote_code(model_dir: str | Path) -> bool:
    return (Path(model_dir) / REMOTE_MODELING).is_file()


def is_default_grid(case: CaseInput, patch: int) -> bool:
    """True when the positions are the model's own default grid (t = frame index), i.e. no positions are needed."""
    from runtime.positions import grid_positions

    b, t, h, w = case.shape
    return torch.equal(case.patch_positions, grid_positions(b, t, h // patch, w // patch))


def load_remote_model(model_dir: str | Path, dtype: torch.dtype) -> Any:
    """The checkpoint's own modeling code, loaded the way `AutoModel.from_pretrained(dir, trust_remote_code=True)`
    loads it: config and model classes resolved from config.json's `auto_map` by transformers' dynamic-module
    loader, then `from_pretrained`.

    Why not AutoModel itself: `models/` registers the `onevision_encoder` model type with the Auto classes, and
    transformers >= 5 prefers an explicitly registered local class over a checkpoint's auto_map, so AutoModel with
    trust_remote_code=True would silently run *our* code. The loaded class is checked to come from the checkpoint.
    """
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = json.loads((Path(model_dir) / "config.json").read_text()).get("auto_map") or {}
    refs = {key: auto_map.get(key) for key in ("AutoConfig", "AutoModel")}
    if not all(refs.values()):
        raise ReferenceError(f"--remote-reference: {model_dir}/config.json has no auto_map AutoConfig/AutoModel")
    config_class = get_class_from_dynamic_module(refs["AutoConfig"], str(model_dir))
    model_class = get_class_from_dynamic_module(refs["AutoModel"], str(model_dir))
    if model_class.__module__.startswith(("models.", "transformers.models.")):
        where = model_class.__module__
        raise ReferenceError(f"--remote-reference resolved to a local class ({where}), not the checkpoint's code")
    # Eager attention, explicitly: the published config.json asks for FlashAttention-2, and upstream's eager path is
    # its exact numerics. Passed to the model too: a `_attn_implementation` key in the file beats the config kwarg.
    config = config_class.from_pretrained(str(model_dir), attn_implementation="eager")
    return model_class.from_pretrained(str(model_dir), config=config, dtype=dtype, attn_implementation="eager").eval()


class _RemoteModel:
    """Adapter over a remote-code model: calls it the way its forward signature allows."""

    def __init__(self, model: Any) -> None:
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.takes_positions = "patch_positions" in params
        self.takes_num_layers = "num_layers" in params
        self.attention = str(getattr(model.config, "_attn_implementation", "?"))

    def unsupported(self, case: CaseInput) -> str | None:
        if not self.takes_positions and not is_default_grid(case, int(self.model.config.patch_size)):
            return "the remote code's forward takes no patch_positions: it runs the default-grid cases only"
        return None

    def __call__(
        self, pv: torch.Tensor, pos: torch.Tensor, num_layers: int, total_layers: int, hidden: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        kwargs: dict[str, Any] = {}
        if self.takes_positions:
            kwargs["patch_positions"] = pos
        want_hidden = hidden or (num_layers != total_layers and not self.takes_num_layers)
        if self.takes_num_layers and num_layers != total_layers:
            kwargs["num_layers"] = num_layers
        x = pv[:, :, 0] if pv.shape[2] == 1 else pv  # (B, C, H, W) for one frame: what every version accepts
        out = self.model(x, output_hidden_states=want_hidden, return_dict=True, **kwargs)
        states = tuple(out.hidden_states) if want_hidden and out.hidden_states is not None else None
        last = out.last_hidden_state
        if num_layers != total_layers and not self.takes_num_layers:
            if states is None or len(states) <= num_layers:
                raise ReferenceError("the remote code returns no hidden states to stop after fewer layers")
            last = states[num_layers]
        return last, states


class _Runner:
    """One loaded reference model: `run(case, num_layers, hidden) -> (last_hidden_state, hidden_states | None)`."""

    def __init__(
        self,
        spec: RefSpec,
        device: torch.device,
        total_layers: int,
        local: EagerRunner | None = None,
        remote: _RemoteModel | None = None,
    ) -> None:
        self.spec, self.device, self.total_layers = spec, device, total_layers
        self.local, self.remote = local, remote

    def unsupported(self, case: CaseInput) -> str | None:
        return self.remote.unsupported(case) if self.remote is not None else None

    def __call__(
        self, case: CaseInput, num_layers: int, hidden: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        if self.local is not None:
            if hidden:
                states = self.local.hidden_states(case.pixel_values, case.patch_positions, num_layers)
                return states[-1], tuple(states)
            return self.local(case.pixel_values, case.patch_positions, num_layers), None
        assert self.remote is not None
        pv = case.pixel_values.to(self.device, self.spec.dtype)
        pos = case.patch_positions.to(self.device)
        return self.remote(pv, pos, num_layers, self.total_layers, hidden)


class ReferenceMemoryError(RuntimeError):
    """A reference does not fit memory for one case (reported on that case's rows; the other cases go on)."""


def attention_bytes(spec: RefSpec, heads: int, tokens: int) -> int:
    """Peak bytes of one sample's attention when the kernel materialises the scores (eager attention; sdpa in
    float64, which no fused kernel takes): scores and probabilities, heads x L x L each. 0 when a fused kernel
    (flash/memory-efficient, O(L) memory) runs."""
    materialises = spec.attention in ("eager", "remote") or spec.precision == "fp64"
    return 2 * heads * tokens * tokens * DTYPES[spec.precision].itemsize if materialises else 0


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def default_memory_budget(device: torch.device) -> int:
    """Bytes a reference computation may take: 80 % of the GPU's memory, or half of the host's available memory."""
    if device.type == "cuda":
        return int(0.8 * torch.cuda.get_device_properties(device).total_memory)
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        available = 8 << 30
    return available // 2


class ReferenceBank:
    """Computes and caches reference outputs: key (case.key, num_layers, reference name) -> CPU tensor.

    Memory-bound: a case whose attention would materialise more than `memory_budget` bytes runs a few samples at a
    time (outputs concatenated), and a case that does not fit even one sample at a time (or runs out of memory) is
    recorded in `unsupported` with the reason, for that case alone. `cache`: references kept on disk between runs.
    `fp32_gemm`: bf16/fp16 references run their linear layers as fp32 GEMMs (`models.eager.fp32_gemm_linears`: a
    CPU without native bf16).
    """

    def __init__(
        self,
        model_dir: str | Path,
        device: torch.device,
        num_hidden_layers: int,
        cache: ReferenceCache | None = None,
        memory_budget: int | None = None,
        fp32_gemm: bool = False,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device = device
        self.total_layers = num_hidden_layers
        self.outputs: dict[tuple[str, int, str], torch.Tensor] = {}
        self.unsupported: dict[tuple[str, str], str] = {}  # (case.key, ref) -> why it cannot run
        self.seconds: dict[str, float] = {}
        self.remote_attention: str | None = None
        self.remote_class: str | None = None
        self.cache = cache
        self.memory_budget = memory_budget if memory_budget is not None else default_memory_budget(device)
        self.fp32_gemm = fp32_gemm
        config = json.loads((self.model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])

    # -- models -------------------------------------------------------------------------------------------------
    def _local(self, spec: RefSpec) -> EagerRunner:
        attn = "sdpa" if spec.attention == "sdpa" else "eager"
        return EagerRunner.load(self.model_dir, spec.dtype, attn, self.device, fp32_gemm=self.fp32_gemm)

    def _remote(self, spec: RefSpec) -> _RemoteModel:
        if not has_remote_code(self.model_dir):
            raise ReferenceError(
                f"--remote-reference: {self.model_dir} has no {REMOTE_MODELING} beside config.json "
                "(only checkpoints that ship their own modeling code have a remote reference)"
            )
        model = load_remote_model(self.model_dir, spec.dtype)
        wrapped = _RemoteModel(model.to(self.device).eval())
        self.remote_attention = wrapped.attention
        self.remote_class = f"{type(model).__module__}.{type(model).__name__}"
        return wrapped

    def _runner(self, spec: RefSpec) -> _Runner:
        if spec.remote:
            return _Runner(spec, self.device, self.total_layers, remote=self._remote(spec))
        return _Runner(spec, self.device, self.total_layers, local=self._local(spec))

    # -- one reference, one case ----------------------------------------------------------------------------------

    def _chunked(self, run: _Runner, case: CaseInput, layers: int) -> torch.Tensor:
        """The reference for every sample of `case`, as many samples per call as the memory budget allows (halved
        again when the device still runs out of memory)."""
        spec, batch = run.spec, case.pixel_values.shape[0]
        per_sample = attention_bytes(spec, self.heads, int(case.patch_positions.shape[1]))
        chunk = batch if per_sample == 0 else min(batch, self.memory_budget // per_sample)
        what = f"{spec.name} does not fit memory for {case.name} ({case.shape_text})"
        if chunk < 1:
            raise ReferenceMemoryError(
                f"{what}: one sample's attention needs ~{_size(per_sample)}, the reference budget is "
                f"{_size(self.memory_budget)} (--reference-memory-gib)"
            )
        while True:
            try:
                parts = [run(case.samples(i, i + chunk), layers, False)[0] for i in range(0, batch, chunk)]
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            except torch.OutOfMemoryError as exc:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if chunk == 1:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise ReferenceMemoryError(f"{what}: out of memory one sample at a time ({first})") from None
                chunk //= 2

    def _one(self, run: _Runner, case: CaseInput, layers: int) -> None:
        name = run.spec.name
        why = run.unsupported(case)
        if why:
            self.unsupported[(case.key, name)] = why
            return
        cached = self.cache.get(case, layers, name) if self.cache is not None else None
        if cached is None:
            try:
                cached = self._chunked(run, case, layers).detach().to("cpu")
            except ReferenceMemoryError as exc:
                self.unsupported[(case.key, name)] = str(exc)
                return
            if self.cache is not None:
                self.cache.put(case, layers, name, cached)
        self.outputs[(case.key, layers, name)] = cached

    # -- public -------------------------------------------------------------------------------------------------
    def compute(
        self,
        jobs: list[tuple[CaseInput, int]],
        names: Iterable[str],
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Compute every reference in `names` for every (case, num_layers) job not cached yet, one model at a time
        (a model is loaded only when a job is not on disk already)."""
        import time

        for name in names:
            spec = REFERENCES[name]
            todo = [(c, n) for c, n in jobs if (c.key, n, name) not in self.outputs]
            if self.cache is not None:
                todo = [(c, n) for c, n in todo if not self._from_cache(c, n, name, progress)]
            if not todo:
                continue
            start = time.perf_counter()
            run = self._runner(spec)
            with torch.inference_mode(), exact_float32():
                for case, layers in todo:
                    self._one(run, case, layers)
                    if progress is not None:
                        progress(f"{name} {case.name}")
            del run
            gc.collect()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _from_cache(self, case: CaseInput, layers: int, name: str, progress: Callable[[str], None] | None) -> bool:
        assert self.cache is not None
        cached = self.cache.get(case, layers, name)
        if cached is None:
            return False
        self.outputs[(case.key, layers, name)] = cached
        if progress is not None:
            progress(f"{name} {case.name} (cached)")
        return True

    def get(self, case: CaseInput, num_layers: int, name: str) -> torch.Tensor | None:
        return self.outputs.get((case.key, num_layers, name))

    def hidden_states(self, case: CaseInput, num_layers: int, name: str) -> list[torch.Tensor]:
        """Per-layer hidden states (index 0 = embeddings after layernorm_pre, k = after k layers), on the CPU."""
        spec = REFERENCES[name]
        run = self._runner(spec)
        with torch.inference_mode(), exact_float32():
            _, states = run(case, num_layers, True)
        if states is None:
            raise ReferenceError(f"{name}: no hidden states returned")
        result = [s.detach().to("cpu") for s in states[: num_layers + 1]]
        del run
        gc.collect()
        return result
