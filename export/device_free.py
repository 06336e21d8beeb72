"""Exported torch programs name no device, so one exported on the CPU runs anywhere after `.module().to(device)`.

torch.export records the tracing device in two places: `aten._assert_tensor_metadata(x, dtype=, device=, layout=)`,
which it inserts before every `Tensor.to(...)` (also dtype-only ones), and any op the model itself pins to a device
(`x.to(device)`, `torch.arange(..., device=...)`). The model keeps its exported path free of the second kind
(models/rope.py moves nothing when inputs and buffers share a device); `make_device_free` drops the `device=` of the
first kind (the dtype and layout checks stay) and refuses a program in which any node still names a device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.export import ExportedProgram

from .base import ExportError

_ASSERT_METADATA = torch.ops.aten._assert_tensor_metadata.default


def _names_device(value: Any) -> bool:
    if isinstance(value, torch.device):
        return True
    if isinstance(value, (list, tuple)):
        return any(_names_device(v) for v in value)
    if isinstance(value, dict):
        return any(_names_device(v) for v in value.values())
    return False


def _graph_modules(module: torch.nn.Module) -> list[torch.fx.GraphModule]:
    return [m for m in module.modules() if isinstance(m, torch.fx.GraphModule)]


def device_nodes(module: torch.nn.Module) -> list[str]:
    """Every node (of the module's graph and its subgraphs) whose arguments name a device, as printed by fx."""
    return [
        node.format_node() or node.name
        for gm in _graph_modules(module)
        for node in gm.graph.nodes
        if _names_device(node.args) or _names_device(node.kwargs)
    ]


def make_device_free(program: ExportedProgram) -> ExportedProgram:
    """Drop the device of every `_assert_tensor_metadata` node (in place); raise `ExportError` if a node still pins
    a device (the model traced a device-specific op: fix the model, the graph would not move)."""
    for gm in _graph_modules(program.graph_module):
        for node in gm.graph.nodes:
            if node.target is _ASSERT_METADATA and "device" in node.kwargs:
                node.kwargs = {k: v for k, v in node.kwargs.items() if k != "device"}
        gm.recompile()
    pinned = device_nodes(program.graph_module)
    if pinned:
        raise ExportError(
            f"the exported graph pins a device in {len(pinned)} node(s), e.g. {pinned[0]}; exported programs must be "
            "device-free (the model must not call .to(device=...) or create tensors on a fixed device in forward)"
        )
    return program
