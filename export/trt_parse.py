"""TensorRT's own ONNX parser as the check of every ONNX graph this bundle exports.

    python -m export.trt_parse artifacts/onnx-fp32-image-448.onnx [--api trt-rtx|trt] [--layers]

`parse_onnx(path, api)` parses a graph into a strongly typed network with the real parser of the given flavour
(`runtime.backends.tensorrt.TRT_RTX`, installed on every machine by `make venv`, or TensorRT 10/11 where it is
installed) and returns the network with what it reports: layer count, layer types, and the I/O names, dtypes and
shapes (-1 for dynamic axes). A graph the parser rejects is one `TensorRTParseError` line naming the node (its
name, operator and index in the graph) and the parser's reason. The builders of `trt` and `trt-rtx` call this
before building; the tests call it on every graph the ONNX builder exports (fp32/bf16/fp16, tiny and full size).

Strongly typed: TensorRT-RTX networks always are (`create_network(0)`); TensorRT 10 gets the STRONGLY_TYPED flag
(11 ignores it). The engine then computes in the graph's own types.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.backends.tensorrt import APIS, TRT_RTX, TensorRTAPI

from .base import ExportError

if TYPE_CHECKING:
    import tensorrt as trt


class TensorRTParseError(ExportError):
    """The TensorRT ONNX parser rejected a graph: one line naming the node and the reason."""


def dims_list(dims: trt.Dims) -> list[int]:
    return [int(dims[i]) for i in range(len(dims))]


def tensor_facts(tensor: trt.ITensor) -> dict[str, Any]:
    return {"name": tensor.name, "dtype": tensor.dtype.name, "shape": dims_list(tensor.shape)}


@dataclass
class ParsedNetwork:
    """A parsed network and the objects that must outlive it (the builder owns the network, the parser its weights)."""

    api: TensorRTAPI
    path: Path
    logger: Any
    builder: Any
    network: Any
    parser: Any
    layer_types: dict[str, int] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.network.num_layers)

    def inputs(self) -> list[dict[str, Any]]:
        return [tensor_facts(self.network.get_input(i)) for i in range(self.network.num_inputs)]

    def outputs(self) -> list[dict[str, Any]]:
        return [tensor_facts(self.network.get_output(i)) for i in range(self.network.num_outputs)]

    def summary(self) -> dict[str, Any]:
        """What the manifest and the README record: as the parsed (and, after a build, built) network reports it."""
        return {
            "parser": f"{self.api.label} {self.api.version()}",
            "layers": self.num_layers,
            "inputs": self.inputs(),
            "outputs": self.outputs(),
        }


def _error_line(api: TensorRTAPI, path: Path, parser: trt.OnnxParser) -> str:
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    if not errors:
        return f"{api.label}'s ONNX parser rejected {path.name} without recording an error"
    first = errors[0]
    node = first.node()
    name = first.node_name() or "(unnamed)"
    op = first.node_operator() or "?"
    code = getattr(first.code(), "name", str(first.code()))
    desc = f"{code}: " + " ".join(str(first.desc()).split())
    where = f"node {name!r} ({op}, #{node})" if node >= 0 else "the graph (no single node)"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return f"{api.label}'s ONNX parser rejected {path.name} at {where}: {desc}{more}"


def parse_onnx(path: str | Path, api: TensorRTAPI = TRT_RTX, *, verbose: bool = False) -> ParsedNetwork:
    """Parse `path` (external data beside it is read too) into a strongly typed network; TensorRTParseError if not."""
    reason = api.unavailable()
    if reason:
        raise ExportError(reason)
    if TYPE_CHECKING:  # TensorRT-RTX mirrors TensorRT's API: both are checked against tensorrt-stubs
        import tensorrt as trt
    else:
        trt = api.module()
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    logger = trt.Logger(trt.Logger.INFO if verbose else trt.Logger.ERROR)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if api.explicit_strong_typing else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        raise TensorRTParseError(_error_line(api, path, parser))
    types = Counter(network.get_layer(i).type.name for i in range(network.num_layers))
    return ParsedNetwork(api, path, logger, builder, network, parser, dict(types.most_common()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.trt_parse", description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", type=Path, nargs="+", help="ONNX file(s) (external data beside them)")
    p.add_argument("--api", choices=sorted(APIS), default=TRT_RTX.kind, help="parser flavour (default trt-rtx)")
    p.add_argument("--layers", action="store_true", help="also list the layer types and their counts")
    args = p.parse_args(argv)
    failed = 0
    for path in args.onnx:
        try:
            parsed = parse_onnx(path, APIS[args.api])
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        io = ", ".join(f"{t['name']} {t['dtype']} {t['shape']}" for t in parsed.inputs() + parsed.outputs())
        print(f"{path}: {parsed.summary()['parser']}: {parsed.num_layers} layers; {io}")
        if args.layers:
            for kind, count in parsed.layer_types.items():
                print(f"  {kind:<24} {count}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
