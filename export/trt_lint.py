"""Lint an ONNX model against the TensorRT 10.x ONNX parser's published operator support matrix.

    python -m export.trt_lint MODEL.onnx [--trt-version 10.15] [--strict] [--ops] [--json]

Every node (its domain + op_type) and every tensor dtype is checked, in the main graph, in ONNX local functions
(inlined first, as the parser does) and in control-flow subgraphs (If/Loop/Scan bodies); dtypes come from the model
plus ONNX shape inference. Violations are printed as one table; the exit status is 1 if there is an error (or, with
--strict, a warning), 2 if the model cannot be read, 0 otherwise. This runs anywhere (no TensorRT needed): it is the
check that a TensorRT build would fail on an op or dtype, made before a GPU is involved.

The matrix below is data, not code from the parser: it encodes the rows of onnx-tensorrt's `docs/operators.md` as
published for TensorRT 10.15 (the newest 10.x release of that file: "TensorRT 10.15 supports operators in the
inclusive range of opset 9 to opset 24"), restricted to the operators a ViT-style encoder export can plausibly
contain plus the table's explicit "N" rows. The older 8.x tables that are still widely copied (no
LayerNormalization, no BF16, INT64 cast down to INT32) do not apply to TensorRT >= 10. Rows whose support arrived
after 10.0 carry the version from onnx-tensorrt's `docs/Changelog.md`; `--trt-version` checks against an older
10.x. An op that is in neither list is reported (fail closed): look it up in the matrix and add it here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx.inliner
import onnx.shape_inference
from onnx import TensorProto

# Source: github.com/onnx/onnx-tensorrt, docs/operators.md at the TensorRT 10.15 release (10.x branch), columns
# "Operator" and "Supported Types"; `since` from docs/Changelog.md of the same tree. Type names as in that table.
MATRIX_VERSION = "10.15"
OPSET_MIN = 9
# Highest default-domain opset each release's matrix states ("10.0 supports ... opset 9 to opset 20", "10.15 ...
# opset 9 to opset 24"). For a release in between, an opset above the lower statement is a warning (not documented
# here either way) and above the higher one an error.
OPSET_MAX = {"10.0": 20, "10.15": 24}

_FLT = ("FP32", "FP16", "BF16")
_NUM = (*_FLT, "INT32", "INT64")
_ALL = (*_NUM, "BOOL")
_CONST = (*_FLT, "FP8", "FP4", "INT4", "INT32", "INT64", "BOOL")


@dataclass(frozen=True)
class OpSupport:
    types: tuple[str, ...]
    since: str = "10.0"
    note: str = ""


MATRIX: dict[str, OpSupport] = {
    "Abs": OpSupport(_NUM),
    "Add": OpSupport(_NUM),
    "And": OpSupport(("BOOL",)),
    "ArgMax": OpSupport(_NUM),
    "ArgMin": OpSupport(_NUM),
    "Attention": OpSupport((*_FLT, "INT8", "FP8"), since="10.14", note="4D Q/K/V; no past_key/past_value"),
    "AveragePool": OpSupport(_FLT, note="2D or 3D pooling only"),
    "BatchNormalization": OpSupport(_FLT),
    "Cast": OpSupport((*_NUM, "UINT8", "BOOL")),
    "CastLike": OpSupport((*_NUM, "UINT8", "BOOL")),
    "Ceil": OpSupport(_FLT),
    "Clip": OpSupport(_FLT),
    "Concat": OpSupport(_ALL),
    "Constant": OpSupport(_CONST),
    "ConstantOfShape": OpSupport(_CONST),
    "Conv": OpSupport(_FLT),
    "ConvTranspose": OpSupport(_FLT),
    "Cos": OpSupport(_FLT),
    "CumSum": OpSupport(_FLT, note="`axis` must be a build-time constant"),
    "DequantizeLinear": OpSupport(("INT8", "FP8", "FP4", "INT4"), note="`x_zero_point` must be zero"),
    "Div": OpSupport(_NUM),
    "Dropout": OpSupport(_FLT, note="`is_training` must be an initializer evaluating to False"),
    "Einsum": OpSupport(_FLT, note="ellipsis, diagonal and broadcasting only since 10.12"),
    "Equal": OpSupport(_NUM),
    "Erf": OpSupport(_FLT),
    "Exp": OpSupport(_FLT),
    "Expand": OpSupport(_ALL),
    "Flatten": OpSupport(_ALL),
    "Floor": OpSupport(_FLT),
    "Gather": OpSupport(_ALL),
    "GatherElements": OpSupport(_ALL),
    "GatherND": OpSupport(_ALL),
    "Gelu": OpSupport((*_FLT, "INT8", "INT32", "INT64")),
    "Gemm": OpSupport(_FLT),
    "GlobalAveragePool": OpSupport(_FLT),
    "Greater": OpSupport(_NUM),
    "GreaterOrEqual": OpSupport(_NUM),
    "GroupNormalization": OpSupport(_FLT),
    "HardSigmoid": OpSupport(_FLT),
    "HardSwish": OpSupport(_FLT),
    "Identity": OpSupport(_ALL),
    "If": OpSupport(_ALL, note="both branches: same output rank, distinct output names"),
    "InstanceNormalization": OpSupport(_FLT),
    "IsInf": OpSupport(_FLT),
    "IsNaN": OpSupport(_NUM),
    "LayerNormalization": OpSupport(_FLT, note="only the first output Y is supported"),
    "LeakyRelu": OpSupport(_FLT),
    "Less": OpSupport(_NUM),
    "LessOrEqual": OpSupport(_NUM),
    "Log": OpSupport(_FLT),
    "LogSoftmax": OpSupport(_FLT),
    "MatMul": OpSupport(_FLT),
    "Max": OpSupport(_NUM),
    "Min": OpSupport(_NUM),
    "Mod": OpSupport(_NUM),
    "Mul": OpSupport(_NUM),
    "Neg": OpSupport(_NUM),
    "Not": OpSupport(("BOOL",)),
    "Or": OpSupport(("BOOL",)),
    "Pad": OpSupport(_NUM),
    "Pow": OpSupport(_NUM),
    "QuantizeLinear": OpSupport(_FLT, note="`y_zero_point` must be 0"),
    "Range": OpSupport(_NUM),
    "Reciprocal": OpSupport(_FLT),
    "ReduceL2": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceMax": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceMean": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceMin": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceProd": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceSum": OpSupport(_NUM, note="`axes` must be an initializer"),
    "ReduceSumSquare": OpSupport(_NUM, note="`axes` must be an initializer"),
    "Relu": OpSupport(_NUM),
    "Reshape": OpSupport(_ALL),
    "Resize": OpSupport(_FLT),
    "RMSNormalization": OpSupport(_FLT, since="10.15"),
    "RotaryEmbedding": OpSupport(_FLT, since="10.15", note="`position_ids` must be INT64"),
    "ScatterElements": OpSupport(_NUM),
    "ScatterND": OpSupport(_NUM, note="`reduction` must be none"),
    "Shape": OpSupport(_ALL),
    "Sigmoid": OpSupport(_FLT),
    "Sign": OpSupport(_NUM),
    "Sin": OpSupport(_FLT),
    "Size": OpSupport(_ALL),
    "Slice": OpSupport(_ALL),
    "Softmax": OpSupport(_FLT),
    "Split": OpSupport(_ALL),
    "Sqrt": OpSupport(_FLT),
    "Squeeze": OpSupport(_ALL, note="`axes` must be resolvable to a constant"),
    "Sub": OpSupport(_NUM),
    "Sum": OpSupport(_NUM),
    "Tanh": OpSupport(_FLT),
    "Tile": OpSupport(_ALL),
    "TopK": OpSupport(_NUM, note="`sorted` must be 1, K < 3840"),
    "Transpose": OpSupport(_ALL),
    "Trilu": OpSupport(_ALL),
    "Unsqueeze": OpSupport(_ALL, note="`axes` must be resolvable to a constant"),
    "Where": OpSupport(_ALL),
    "Xor": OpSupport(("BOOL",)),
}

# The same table's "N" rows: operators the 10.x parser does not import at all.
_N_ROWS = """AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im Compress
    ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
    MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv
    QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
    SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer
    Unique"""
UNSUPPORTED = frozenset(_N_ROWS.split())

# ONNX element type -> the matrix's type name. The data types TensorRT >= 10 takes at all ("DOUBLE, FLOAT32,
# FLOAT16, BFLOAT16, FP8, FP4, INT32, INT64, INT8, INT4, UINT8, and BOOL"); any other is unsupported everywhere.
TYPE_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.BOOL: "BOOL",
    TensorProto.DOUBLE: "DOUBLE",
    TensorProto.FLOAT8E4M3FN: "FP8",
    TensorProto.INT4: "INT4",
    TensorProto.FLOAT4E2M1: "FP4",
}
QUANTIZED = frozenset({"INT8", "INT4", "FP8", "FP4"})  # only through QuantizeLinear/DequantizeLinear
# Ops whose type constraint spans inputs and outputs with different type variables (source and target type).
CHECK_ALL_TENSORS = frozenset({"Cast", "CastLike", "ConstantOfShape"})
STANDARD_DOMAINS = ("", "ai.onnx")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def opset_bounds(trt_version: str) -> tuple[int, int]:
    """(highest opset stated at or below `trt_version`, highest stated at or above it; the newest if none is)."""
    target = _version(trt_version)
    below = [OPSET_MAX[v] for v in OPSET_MAX if _version(v) <= target] or [min(OPSET_MAX.values())]
    above = [OPSET_MAX[v] for v in OPSET_MAX if _version(v) >= target] or [max(OPSET_MAX.values())]
    return max(below), min(above)


def onnx_type_name(elem_type: int) -> str:
    if elem_type in TYPE_NAMES:
        return TYPE_NAMES[elem_type]
    try:
        return str(TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"type{elem_type}"


@dataclass
class Violation:
    severity: str  # "error" | "warning"
    where: str  # graph path: "main", "main/If_3.then_branch", ...
    node: str
    op: str  # domain::op_type ("" domain shown bare)
    tensor: str
    dtype: str
    reason: str


@dataclass
class LintReport:
    model: str
    trt_version: str
    opset: int
    nodes: int = 0
    violations: list[Violation] = field(default_factory=list)
    ops: dict[str, set[str]] = field(default_factory=dict)  # op -> dtypes seen on its checked tensors

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "warning"]

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)

    def summary(self) -> str:
        return (
            f"trt-lint {self.model}: {self.nodes} nodes, {len(self.ops)} op types, opset {self.opset}, checked "
            f"against the TensorRT {MATRIX_VERSION} ONNX operator matrix for TensorRT {self.trt_version}: "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )

    def table(self) -> str:
        header = ("severity", "graph", "node", "op", "tensor", "dtype", "reason")
        rows = [(v.severity, v.where, v.node, v.op, v.tensor, v.dtype, v.reason) for v in self.violations]
        return format_table(header, rows)

    def ops_table(self) -> str:
        rows = []
        for op in sorted(self.ops):
            name = op.rpartition("::")[2]
            support = MATRIX.get(name)
            allowed = ", ".join(support.types) if support else "-"
            rows.append((op, ", ".join(sorted(self.ops[op])) or "-", allowed))
        return format_table(("op", "dtypes in model", f"TensorRT {MATRIX_VERSION} matrix"), rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "trt_version": self.trt_version,
            "matrix_version": MATRIX_VERSION,
            "opset": self.opset,
            "nodes": self.nodes,
            "ops": {k: sorted(v) for k, v in sorted(self.ops.items())},
            "violations": [asdict(v) for v in self.violations],
        }


def format_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    rows = list(rows)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _value_types(values: Iterable[onnx.ValueInfoProto]) -> dict[str, int]:
    out = {}
    for v in values:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            out[v.name] = v.type.tensor_type.elem_type
    return out


def _graph_types(graph: onnx.GraphProto, outer: dict[str, int]) -> dict[str, int]:
    """Tensor name -> ONNX element type visible in `graph` (outer scope, then this graph's own declarations)."""
    types = dict(outer)
    types.update({init.name: init.data_type for init in graph.initializer})
    for values in (graph.input, graph.value_info, graph.output):
        types.update(_value_types(values))
    for node in graph.node:  # Constant outputs may lack value_info
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    types.setdefault(node.output[0], attr.t.data_type)
    return types


def _formal_types(schema: onnx.defs.OpSchema, count: int, inputs: bool) -> list[str]:
    """The type variable (e.g. 'T') of each actual input/output position, variadic formals repeated."""
    formals = schema.inputs if inputs else schema.outputs
    if not formals:
        return [""] * count
    out = []
    for i in range(count):
        formal = formals[min(i, len(formals) - 1)]
        last_variadic = formal.option == onnx.defs.OpSchema.FormalParameterOption.Variadic
        out.append(formal.type_str if i < len(formals) or last_variadic else "")
    return out


def _checked_tensors(node: onnx.NodeProto, opset: int) -> list[str]:
    """The node's tensors that carry the type the matrix's "Supported Types" column is about."""
    named = [n for n in (*node.input, *node.output) if n]
    if node.op_type in CHECK_ALL_TENSORS:
        return named
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return named
    ins = _formal_types(schema, len(node.input), inputs=True)
    outs = _formal_types(schema, len(node.output), inputs=False)
    variables = [t for t in (*ins, *outs) if t and not t.startswith("tensor(")]
    if not variables:
        return []
    main = "T" if "T" in variables else variables[0]
    pairs = [*zip(node.input, ins), *zip(node.output, outs)]
    return [name for name, t in pairs if name and t == main]


class _Linter:
    def __init__(self, report: LintReport, opset: int, target: tuple[int, ...], graph_io: set[str]) -> None:
        self.report = report
        self.opset = opset
        self.target = target
        self.graph_io = graph_io
        self.consumers: dict[str, list[str]] = {}  # tensor -> op types reading it
        self.producers: dict[str, tuple[str, str]] = {}  # tensor -> (node name, op type) writing it

    def add(
        self, severity: str, where: str, reason: str, node: str = "", op: str = "", tensor: str = "", dtype: str = ""
    ) -> None:
        self.report.violations.append(Violation(severity, where, node, op, tensor, dtype, reason))

    def walk(self, graph: onnx.GraphProto, where: str, outer: dict[str, int]) -> None:
        types = _graph_types(graph, outer)
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node.op_type)
            for name in node.output:
                self.producers[name] = (node.name or f"<{node.op_type}>", node.op_type)
        for node in graph.node:
            self.node(node, where, types)
            for attr in node.attribute:
                subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
                for i, sub in enumerate(subgraphs):
                    suffix = f"[{i}]" if attr.type == onnx.AttributeProto.GRAPHS else ""
                    self.walk(sub, f"{where}/{node.name or node.op_type}.{attr.name}{suffix}", types)
        self.dtypes(graph, where, types)

    def node(self, node: onnx.NodeProto, where: str, types: dict[str, int]) -> None:
        self.report.nodes += 1
        name = node.name or f"<{node.op_type}>"
        op = f"{node.domain}::{node.op_type}" if node.domain not in STANDARD_DOMAINS else node.op_type
        seen = self.report.ops.setdefault(op, set())
        if node.domain not in STANDARD_DOMAINS:
            reason = (
                f"custom domain {node.domain!r}: not an ONNX op; the parser imports it only if a TensorRT plugin "
                f"named {node.op_type!r} is registered"
            )
            self.add("error", where, reason, name, op)
            return
        if node.op_type in UNSUPPORTED:
            self.add("error", where, f"{node.op_type} is not supported by the TensorRT ONNX parser", name, op)
            return
        support = MATRIX.get(node.op_type)
        if support is None:
            reason = (
                f"{node.op_type} is not in the encoded subset of the TensorRT {MATRIX_VERSION} matrix: check "
                "onnx-tensorrt docs/operators.md and add its row to export/trt_lint.py"
            )
            self.add("error", where, reason, name, op)
            return
        if _version(support.since) > self.target:
            reason = f"{node.op_type} needs TensorRT >= {support.since} (checking against {self.report.trt_version})"
            self.add("error", where, reason, name, op)
        for tensor in _checked_tensors(node, self.opset):
            elem = types.get(tensor)
            if elem is None:
                continue  # reported once per tensor by dtypes()
            dtype = onnx_type_name(elem)
            seen.add(dtype)
            if dtype not in support.types:
                self.add("error", where, f"{node.op_type} supports {', '.join(support.types)}", name, op, tensor, dtype)
        self.restrictions(node, where, name, op)

    def restrictions(self, node: onnx.NodeProto, where: str, name: str, op: str) -> None:
        """The matrix's "Restrictions" notes that a static look at the node can decide."""
        if node.op_type == "LayerNormalization" and any(node.output[1:]):
            used = [o for o in node.output[1:] if o and (o in self.consumers or o in self.graph_io)]
            if used:
                self.add(
                    "error", where, "only the first output Y of LayerNormalization is supported", name, op, used[0]
                )
        if node.op_type == "Einsum" and self.target < _version("10.12"):
            equation = next((a.s.decode() for a in node.attribute if a.name == "equation"), "")
            if "..." in equation:
                reason = f"Einsum {equation!r}: ellipsis needs TensorRT >= 10.12 (use a broadcasted Mul)"
                self.add("error", where, reason, name, op)

    def dtypes(self, graph: onnx.GraphProto, where: str, types: dict[str, int]) -> None:
        """Every tensor produced or declared in this graph has a type TensorRT takes at all."""
        declared = {init.name for init in graph.initializer}
        declared |= {v.name for v in (*graph.input, *graph.output)}
        produced = {o for node in graph.node for o in node.output if o}
        for tensor in sorted(declared | produced):
            elem = types.get(tensor)
            if elem is None:
                node, op = self.producers.get(tensor, ("", ""))
                self.add("warning", where, "dtype unknown after shape inference: not checked", node, op, tensor, "?")
                continue
            dtype = onnx_type_name(elem)
            if dtype == "DOUBLE":
                self.add(
                    "warning",
                    where,
                    "TensorRT casts DOUBLE down to FLOAT (clamped to +-FLT_MAX)",
                    tensor=tensor,
                    dtype=dtype,
                )
            elif dtype not in TYPE_NAMES.values():
                self.add("error", where, "data type not supported by TensorRT", tensor=tensor, dtype=dtype)
            elif dtype == "UINT8" and tensor not in self.graph_io and tensor not in declared:
                reason = "UINT8 is only supported as a network input or output"
                self.add("error", where, reason, tensor=tensor, dtype=dtype)
            elif dtype in QUANTIZED and tensor not in declared:
                ops = {self.producers.get(tensor, ("", ""))[1], *self.consumers.get(tensor, [])}
                if not ops & {"QuantizeLinear", "DequantizeLinear"}:
                    reason = f"{dtype} only through QuantizeLinear/DequantizeLinear"
                    self.add("error", where, reason, tensor=tensor, dtype=dtype)


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in STANDARD_DOMAINS:
            return int(imp.version)
    return 0


def lint_model(model: onnx.ModelProto, name: str = "<model>", trt_version: str = MATRIX_VERSION) -> LintReport:
    """Lint an in-memory model (weights need not be loaded: only types and shapes are read)."""
    if model.functions:  # local functions (e.g. from the dynamo exporter): the parser imports their bodies
        model = onnx.inliner.inline_local_functions(model)
    model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=False)
    opset = _opset(model)
    report = LintReport(model=name, trt_version=trt_version, opset=opset)
    stated, possible = opset_bounds(trt_version)
    if not OPSET_MIN <= opset <= possible:
        reason = f"default-domain opset {opset} outside {OPSET_MIN}..{possible} (TensorRT {trt_version})"
        report.violations.append(Violation("error", "main", "", "", "", "", reason))
    elif opset > stated:
        reason = (
            f"default-domain opset {opset}: TensorRT {trt_version} lies between matrices stating opset <= {stated} "
            f"and <= {possible}"
        )
        report.violations.append(Violation("warning", "main", "", "", "", "", reason))
    graph_io = {v.name for v in (*model.graph.input, *model.graph.output)}
    _Linter(report, opset, _version(trt_version), graph_io).walk(model.graph, "main", {})
    return report


def lint_file(path: str | Path, trt_version: str = MATRIX_VERSION) -> LintReport:
    """Lint an `.onnx` file; external weight files are not read."""
    model = onnx.load(str(path), load_external_data=False)
    return lint_model(model, name=Path(path).name, trt_version=trt_version)


def iter_lines(report: LintReport, show_ops: bool) -> Iterator[str]:
    if show_ops:
        yield report.ops_table()
        yield ""
    if report.violations:
        yield report.table()
        yield ""
    yield report.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.trt_lint", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file")
    parser.add_argument("--trt-version", default=MATRIX_VERSION, help=f"TensorRT 10.x to check for ({MATRIX_VERSION})")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")
    parser.add_argument("--ops", action="store_true", help="also print every op type with its dtypes")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = lint_file(args.model, trt_version=args.trt_version)
    except Exception as exc:  # unreadable or invalid model: one line
        print(f"trt-lint: cannot read {args.model}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(iter_lines(report, args.ops)))
    return 0 if report.ok(strict=args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
