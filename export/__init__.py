"""Deployment artifacts of the encoder: one builder module per kind behind `export.base.Builder`.

    from export import BuildRequest, build
    result = build("onnx", BuildRequest(model_dir, "fp32", [resolve_profile("image-448")], Path("artifacts")))

Builders are imported lazily (`get_builder`), so asking for one kind never imports another kind's toolchain.
"""

from __future__ import annotations

import importlib

from contract.backends import BACKENDS

from .base import Builder, BuildRequest, BuildResult, ExportError

# kind -> "module:class", from the one description of each backend (contract/backends.py).
BUILDERS: dict[str, str] = {kind: b.builder for kind, b in BACKENDS.items()}


def get_builder(kind: str) -> Builder:
    """The builder of `kind`; an ExportError line when the kind is unknown or its module cannot be imported."""
    if kind not in BUILDERS:
        raise ExportError(f"unknown artifact kind {kind!r}: use one of {', '.join(BUILDERS)}")
    module_name, _, class_name = BUILDERS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ExportError(f"{kind}: builder module {module_name} is not in this checkout") from None
        raise ExportError(f"{kind}: needs the Python package {exc.name!r}, which is not installed here") from None
    builder_class = getattr(module, class_name, None)
    if builder_class is None:
        raise ExportError(f"{kind}: {module_name} has no {class_name}")
    builder: Builder = builder_class()
    return builder


def build(kind: str, request: BuildRequest) -> BuildResult:
    """Build one artifact; ExportError (one line) if this machine cannot or the request is wrong."""
    builder = get_builder(kind)
    reason = builder.unavailable(request)
    if reason:
        raise ExportError(f"{kind}: {reason}")
    return builder.build(request)


__all__ = ["BUILDERS", "BuildRequest", "BuildResult", "Builder", "ExportError", "build", "get_builder"]
