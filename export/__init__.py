"""Deployment artifacts of the encoder: one builder module per kind behind `export.base.Builder`.

    from export import BuildRequest, build
    result = build("onnx", BuildRequest(model_dir, "fp32", [resolve_profile("image-448")], Path("artifacts")))

Builders are imported lazily (`get_builder`), so asking for one kind never imports another kind's toolchain.
"""

from __future__ import annotations

from contract.backends import BACKENDS, Unresolvable, resolve

from .base import Builder, BuildRequest, BuildResult, ExportError

# kind -> "module:class", from the one description of each backend (contract/backends.py).
BUILDERS: dict[str, str] = {kind: b.builder for kind, b in BACKENDS.items()}


def get_builder(kind: str) -> Builder:
    """The builder of `kind`; an ExportError line when the kind is unknown or its module cannot be imported."""
    if kind not in BUILDERS:
        raise ExportError(f"unknown artifact kind {kind!r}: use one of {', '.join(BUILDERS)}")
    try:
        builder_class = resolve(BUILDERS[kind])
    except Unresolvable as exc:
        raise ExportError(f"{kind}: {exc}") from None
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
