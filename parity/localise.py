"""Localisation of a failure: the first encoder layer at which the artifact's error jumps past the calibrated bound.

The residual stream after every layer (hidden state k: 0 = embeddings after layernorm_pre, k = after k encoder
layers) is read from the artifact's *own* computation and compared, with the same calibrated rule as the outputs
(rule "pa/pr" of tolerances.json, inherent errors measured per layer against the float64 golden), to the failing
row's reference. The first hidden state that fails names the layer.

How each kind exposes its hidden states (cheap: one extra run of the failing case, no re-export):
- pt2: the ExportedProgram's graph is interpreted node by node (torch.fx.Interpreter over `program.module()`, the
  module the runtime runs) and the value of the last node inside each `encoder.layers.<i>` module (its second
  residual add; found through the `nn_module_stack` metadata torch.export keeps on every node) is recorded.
- onnx: the last node of each `encoder.layers.<i>` scope (`pkg.torch.onnx.name_scopes` metadata written by the
  torch exporter) becomes an extra graph output; the same weights and graph run in onnxruntime on the CPU.
- eager stand-ins: the model's own `forward_intermediates` (every hidden state, through `models.eager.EagerRunner`).
- aoti / trt / torchscript (compiled or frozen, nothing inside is read): bisection over truncated rebuilds of the
  same kind
  (`BuildRequest(output_layer=k)` from the manifest's source checkpoint): ceil(log2(N)) builds. This re-creates
  the artifact, so it finds errors the build process makes (compiler, lowering, precision) but not damage to the
  file itself; a file whose weights differ from the reference is flagged by its manifest's weights sha256 instead.
  It runs by default only for small models (each full-size compiled build takes minutes): `--localise rebuild`.

A failing item of a packed case (parity/cases.py) is localised in the call it was run in: the runtime's plan for its
case gives that call's three packed inputs (contract/packing.py), the probe runs them (the pt2 program and the ONNX
graph take them as the artifact does; a truncated rebuild is a packed artifact too, run with `run_packed_call`), and
every hidden state is cut to the item's rows of the call (`Subject`) before it is judged against the item's own
references. A probe that cannot run a packed call says so in the localisation record.
"""

from __future__ import annotations

import ast
import gc
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.backends import BACKENDS
from models.metrics import compare
from models.tf32 import exact_float32

from .artifacts import ArtifactUnderTest, EagerRunner
from .cases import CaseInput, PackedCase
from .references import GOLDEN, REFERENCES, ReferenceBank, calibration_name
from .tolerances import Tolerances

_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)$")
_EMBED = re.compile(r"(?:^|\.)layernorm_pre$")


def layer_name(index: int) -> str:
    """Hidden state index -> what produced it."""
    return "embeddings (patch embedding + layernorm_pre)" if index == 0 else f"encoder.layers.{index - 1}"


def _slot(path: str) -> int | None:
    """Module path -> hidden-state index it ends (0 for layernorm_pre, i + 1 for encoder.layers.i), else None."""
    if _EMBED.search(path):
        return 0
    m = _LAYER.search(path)
    return int(m.group(1)) + 1 if m else None


# --- probes: per-layer hidden states of the artifact's own computation ---------------------------------------------


@dataclass
class Subject:
    """What a probe runs: the artifact's own inputs (batched: pixel_values in its dtype and patch_positions; packed:
    one call's pixel_patches, patch_positions and cu_seqlens) and, for a packed item, its token rows in that call."""

    inputs: tuple[torch.Tensor, ...]
    rows: tuple[int, int] | None = None  # packed: the item's rows [a, b) of the call's N tokens
    packed: str | None = None  # packed: the case's name

    def take(self, state: torch.Tensor) -> torch.Tensor:
        """A hidden state (or output) of the whole input -> the case's part: (1, L, hidden) rows of a packed item."""
        if self.rows is None:
            return state
        a, b = self.rows
        return state.reshape(-1, state.shape[-1])[a:b][None]

    def describe(self) -> str:
        if self.rows is None:
            return ""
        a, b = self.rows
        tokens = int(self.inputs[1].numel() // 3)
        return f"; run on the packed call holding the item ({self.packed}: its rows {a}..{b} of the call's {tokens})"


def packed_subject(art: ArtifactUnderTest, case: PackedCase, index: int) -> Subject:
    """Item `index` of a packed case as the probe sees it: the very call the runtime ran it in (its plan for the
    case's items) and the item's rows in that call."""
    pairs = [(item.pixel_values, item.patch_positions) for item in case.items]
    for call, inputs in art.runner.plan_packed(art.packed_items(pairs)):
        if index in call:
            cu = [int(v) for v in inputs[2].tolist()]
            at = call.index(index)
            return Subject(tuple(t.to("cpu") for t in inputs), (cu[at], cu[at + 1]), packed=case.name)
    raise LookupError(f"item {index} of {case.name} is in no planned call")


class Probe:
    method: str = ""

    def states(self, *inputs: torch.Tensor) -> dict[int, torch.Tensor]:
        """Hidden state index -> value, for the artifact's own inputs (those of a Subject)."""
        raise NotImplementedError

    def close(self) -> None:
        gc.collect()


class EagerProbe(Probe):
    method = "eager model: forward_intermediates"

    def __init__(self, runner: EagerRunner) -> None:
        self.runner = runner

    def states(self, *inputs: torch.Tensor) -> dict[int, torch.Tensor]:
        pixel_values, patch_positions = inputs
        return dict(enumerate(self.runner.hidden_states(pixel_values, patch_positions)))


class Pt2Probe(Probe):
    method = "pt2: fx.Interpreter over the ExportedProgram, values at the end of each encoder.layers.<i> module"

    def __init__(self, path: Path, device: str) -> None:
        program = torch.export.load(str(path))
        self.module = program.module()
        if device != "cpu":
            self.module = self.module.to(device)
        self.device = device
        self.targets: dict[str, int] = {}
        for node in self.module.graph.nodes:
            stack = node.meta.get("nn_module_stack")
            if not stack:
                continue
            path_, _ = list(stack.values())[-1]
            slot = _slot(str(path_))
            if slot is not None:
                self.targets[node.name] = slot  # later nodes of the same module overwrite: the last one wins
        last: dict[int, str] = {}
        for name, slot in self.targets.items():
            last[slot] = name
        self.last = {name: slot for slot, name in last.items()}
        if not self.last:
            raise LookupError("the ExportedProgram carries no nn_module_stack metadata for encoder.layers.<i>")

    def states(self, *inputs: torch.Tensor) -> dict[int, torch.Tensor]:
        captured: dict[int, torch.Tensor] = {}
        last = self.last

        class Capture(torch.fx.Interpreter):
            def run_node(self, n: torch.fx.Node) -> Any:
                out = super().run_node(n)
                slot = last.get(n.name)
                if slot is not None and isinstance(out, torch.Tensor):
                    captured[slot] = out.detach().to("cpu")
                return out

        with torch.no_grad():
            Capture(self.module).run(*(t.to(self.device) for t in inputs))
        return captured


class OnnxProbe(Probe):
    method = "onnx: the last node of each encoder.layers.<i> scope added as a graph output (onnxruntime, CPU)"

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        import onnx

        from runtime.backends.onnx import LoadError, create_session

        model = onnx.load(str(path))
        last: dict[int, str] = {}
        for node in model.graph.node:
            meta = {p.key: p.value for p in node.metadata_props}
            scopes = meta.get("pkg.torch.onnx.name_scopes")
            if not scopes or not node.output:
                continue
            try:
                parts = ast.literal_eval(scopes)
            except (ValueError, SyntaxError):
                continue
            if len(parts) < 2:
                continue
            slot = _slot(str(parts[-2]))
            if slot is not None:
                last[slot] = node.output[0]
        if not last:
            raise LookupError("the ONNX graph carries no pkg.torch.onnx.name_scopes metadata for encoder.layers.<i>")
        existing = {o.name for o in model.graph.output}
        elem = model.graph.output[0].type.tensor_type.elem_type
        for value in last.values():
            if value not in existing:
                model.graph.output.append(onnx.helper.make_tensor_value_info(value, elem, None))
                existing.add(value)
        self.names = {value: slot for slot, value in last.items()}
        with tempfile.TemporaryDirectory(prefix="parity-onnx-") as tmp:
            target = Path(tmp) / "probe.onnx"
            onnx.save(model, str(target), save_as_external_data=True, location="probe.onnx.data")
            del model
            try:
                self.session = create_session(target, torch.device("cpu"), precision)
            except LoadError as exc:
                raise LookupError(str(exc)) from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def states(self, *inputs: torch.Tensor) -> dict[int, torch.Tensor]:
        if inputs[0].dtype == torch.bfloat16:
            raise LookupError("numpy has no bfloat16: the ONNX probe runs fp32/fp16 graphs only")
        feeds = dict(zip(self.inputs, (t.cpu().numpy() for t in inputs), strict=True))
        names = list(self.names)
        outs = self.session.run(names, feeds)
        return {self.names[n]: torch.from_numpy(o) for n, o in zip(names, outs, strict=True)}


class RebuildProbe(Probe):
    """Truncated rebuilds (output_layer=k) of a compiled artifact; states() computes only the asked layers."""

    method = "rebuild: bisection over truncated builds of the same kind (BuildRequest.output_layer=k)"

    def __init__(self, art: ArtifactUnderTest, model_dir: Path) -> None:
        self.art = art
        self.model_dir = model_dir
        self.tmp = tempfile.TemporaryDirectory(prefix="parity-rebuild-")
        self.cache: dict[int, Any] = {}
        self.builds = 0

    def layer(self, k: int, subject: Subject) -> torch.Tensor:
        """The output of a build truncated after k layers for the subject's inputs (a packed one: the same call, run
        whole by `run_packed_call`, cut to the item's rows)."""
        import runtime
        from export import BuildRequest, build

        assert self.art.manifest is not None and self.art.profile is not None
        if k not in self.cache:
            request = BuildRequest(
                model_dir=self.model_dir,
                precision=self.art.precision,
                profiles=[self.art.profile],
                out_dir=Path(self.tmp.name),
                output_layer=k,
                device=self.art.manifest.device,
                options={"quiet": True},
                overwrite=True,
            )
            result = build(self.art.kind, request)
            self.builds += 1
            self.cache[k] = runtime.load(result.path, device=self.art.device, verify=False)
        runner = self.cache[k]
        out = runner.run_packed_call(*subject.inputs) if subject.rows is not None else runner(*subject.inputs)
        return subject.take(out.detach().to("cpu"))

    def close(self) -> None:
        for runner in self.cache.values():
            runner.close()
        self.cache.clear()
        self.tmp.cleanup()
        super().close()


def make_probe(art: ArtifactUnderTest, mode: str, model_dir: Path, small_model: bool) -> Probe | str:
    """The probe for an artifact, or one line saying why it cannot be localised (mode: auto|rebuild|off)."""
    if mode == "off":
        return "localisation off (--localise off)"
    try:
        if art.kind == "eager":
            return EagerProbe(art.runner)
        described = BACKENDS.get(art.kind)
        probe = described.probe if described else None
        if probe == "program" and art.path is not None and mode != "rebuild":
            return Pt2Probe(art.path, art.device)
        if probe == "onnx-outputs" and art.path is not None and mode != "rebuild":
            if art.precision == "bf16":
                return "bf16 ONNX: numpy has no bfloat16, so the probe cannot feed it (export fp32 to localise)"
            return OnnxProbe(art.path, art.precision)
    except LookupError as exc:
        return f"cannot read hidden states: {exc}"
    if art.kind in BACKENDS:  # every kind can be rebuilt truncated
        if mode == "rebuild" or small_model:
            source = Path(str((art.manifest.source if art.manifest else {}).get("checkpoint", model_dir)))
            return RebuildProbe(art, source if (source / "config.json").is_file() else model_dir)
        return (
            f"{art.kind} is compiled (no observable hidden states) and the model is full size: rerun with "
            "--localise rebuild to bisect over truncated rebuilds (~log2(layers) builds)"
        )
    return f"no probe for kind {art.kind!r}"


# --- localisation -------------------------------------------------------------------------------------------------


@dataclass
class LayerRow:
    index: int
    name: str
    rel_l2: float
    bound_rel_l2: float
    max_angle: float
    bound_angle: float
    ratio: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Localisation:
    artifact: str
    case: str
    reference: str
    method: str
    first_layer: str | None  # e.g. "encoder.layers.1"; None if not found
    first_index: int | None
    message: str
    layers: list[LayerRow] = field(default_factory=list)
    probe_consistency: float | None = None  # rel_l2(probe's last state, artifact output)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "layers"}
        data["layers"] = [row.to_dict() for row in self.layers]
        return data


def _judge_layer(
    tol: Tolerances,
    art: ArtifactUnderTest,
    ref_precision: str,
    index: int,
    state: torch.Tensor,
    ref: torch.Tensor,
    golden: torch.Tensor,
    own: torch.Tensor,
) -> LayerRow:
    m = compare(state, ref)
    inherent_a = compare(own, golden)
    inherent_r = compare(ref, golden) if ref is not golden else None
    verdict = tol.judge(
        m,
        art.precision,
        ref_precision,
        (inherent_a.rel_l2, inherent_a.max_angle),
        (inherent_r.rel_l2, inherent_r.max_angle) if inherent_r else (0.0, 0.0),
    )
    return LayerRow(
        index,
        layer_name(index),
        m.rel_l2,
        verdict.bound_rel_l2,
        m.max_angle,
        verdict.bound_angle,
        verdict.ratio,
        verdict.passed,
    )


@exact_float32()  # the probes' runs and rebuilds are fp32 comparisons too: no TF32
def localise(
    art: ArtifactUnderTest,
    case: CaseInput,
    reference: str,
    output: torch.Tensor,
    bank: ReferenceBank,
    tol: Tolerances,
    probe: Probe,
    progress: Callable[[str], None] | None = None,
    subject: Subject | None = None,
) -> Localisation:
    """Find the first hidden state of `art` on `case` that fails the rule against `reference` (see module doc).
    `subject`: what the probe runs (default: the case's own inputs; a packed item's: its call, parity.suite)."""
    subject = subject or Subject((case.pixel_values.to(art.input_dtype), case.patch_positions))
    n = art.num_layers
    golden = bank.hidden_states(case, n, GOLDEN)
    own_name = calibration_name(art.precision)
    own = bank.hidden_states(case, n, own_name)
    ref_states = golden if reference == GOLDEN else bank.hidden_states(case, n, reference)
    ref_precision = REFERENCES[reference].precision
    result = Localisation(art.name, case.key, reference, probe.method, None, None, "")

    def judge(index: int, state: torch.Tensor) -> LayerRow:
        return _judge_layer(tol, art, ref_precision, index, state, ref_states[index], golden[index], own[index])

    if isinstance(probe, RebuildProbe):
        # Bisection: hidden state n fails (observed); find the smallest k in [1, n] whose truncated build fails.
        lo, hi = 0, n
        rows: dict[int, LayerRow] = {n: judge(n, output)}
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if progress is not None:
                progress(f"rebuild {art.kind} with output_layer={mid}")
            row = judge(mid, probe.layer(mid, subject))
            rows[mid] = row
            if row.passed:
                lo = mid
            else:
                hi = mid
        result.layers = [rows[k] for k in sorted(rows)]
        first = hi
        result.method += f" ({probe.builds} builds)"
    else:
        states = {k: subject.take(v) for k, v in probe.states(*subject.inputs).items()}
        missing = [k for k in range(n + 1) if k not in states]
        if n in states:
            result.probe_consistency = compare(states[n], output).rel_l2
        result.layers = [judge(k, states[k]) for k in sorted(states) if k <= n]
        failing = [row.index for row in result.layers if not row.passed]
        first = failing[0] if failing else -1
        if missing:
            result.method += f" (no value found for hidden state(s) {missing})"
    result.method += subject.describe()
    if first >= 0:
        prev = next((r for r in result.layers if r.index == first - 1), None)
        row = next(r for r in result.layers if r.index == first)
        jump = f", up from {prev.ratio:.2g}x at {prev.name}" if prev is not None else ""
        result.first_index = first
        result.first_layer = layer_name(first)
        result.message = (
            f"first failing layer: {result.first_layer} (hidden state {first} of {n}): error {row.ratio:.3g}x the "
            f"calibrated bound{jump}"
        )
        if first == 1 and isinstance(probe, RebuildProbe):
            result.message += " (the embeddings are not observable by rebuild: the error is at or before this layer)"
    else:
        result.message = "no hidden state exceeds its bound: the error appears only at the output"
    return result
