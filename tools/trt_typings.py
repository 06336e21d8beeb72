"""Make the `tensorrt-stubs` wheel usable by mypy: `python tools/trt_typings.py [OUT]` (default `typings/`).

tensorrt-stubs (10.13.0.35.1, the newest on PyPI) installs `tensorrt/__init__.pyi` and `tensorrt_bindings/*.pyi`
into site-packages without a `py.typed` marker, so mypy refuses them ("module is installed, but missing library
stubs or py.typed marker"); and its generated `tensorrt_bindings/tensorrt.pyi` is not valid Python (parameters
named `in`, a parameter without a default after defaulted ones), which mypy reports as blocking syntax errors.

This script copies the installed stubs into OUT (a directory on mypy's search path: `mypy_path = "typings"` in
pyproject.toml) with exactly these mechanical repairs, and checks that every file then parses:

- a parameter named `in` becomes `in_`;
- in a signature where a parameter without a default follows defaulted ones, it gets the stub default `= ...`;
- `import tensorrt_libs` (the native-library wheel, which has no stubs) is dropped;
- in `tensorrt_bindings/tensorrt.pyi` the module-level data type `bool: DataType` (TensorRT's `trt.bool`) shadows
  the builtin, which turns every `-> bool` of the file into an invalid type: annotations there name
  `_builtins.bool` instead (`import builtins as _builtins` is added);
- a file that names `typing_extensions.Buffer` without importing `typing_extensions` gets the import (else every
  buffer argument, e.g. of `Runtime.deserialize_cuda_engine`, silently becomes `Any`).

Every other line is the wheel's own text: the API mypy checks against is the stubs', nothing hand-written.
OUT is generated (it carries its own `.gitignore`); run this again after changing the stubs' version.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")
DIST = "tensorrt-stubs"
_IN_PARAM = re.compile(r"(?<=[(,] )in(?=: )|(?<=\()in(?=: )")
_BOOL = re.compile(r"(?<![\w.])bool(?!\w)")
_ANNOTATED = re.compile(r"^\s+\w+: ")  # a class-level attribute annotation


def stub_sources() -> dict[str, Path]:
    """Relative path -> installed file for every `.pyi` of the tensorrt-stubs distribution."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{DIST} is not installed (pip install --no-deps {DIST})") from None
    files = {}
    for f in dist.files or []:
        if f.suffix == ".pyi" and f.parts[0] in PACKAGES:
            files[str(f)] = Path(str(dist.locate_file(f)))
    if not files:
        raise SystemExit(f"{DIST} {dist.version} installs no .pyi files under {PACKAGES}")
    return files


def _split_params(params: str) -> list[str]:
    """Split a parameter list at top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return parts


def _fix_default_order(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)(?: -> .*)?:\s*)$", line)
    if not match:
        return line
    head, params, tail = match.groups()
    parts = _split_params(params)
    seen_default, changed = False, False
    for i, part in enumerate(parts):
        name = part.strip()
        if not name or name.startswith("*") or name == "/":
            continue
        if "=" in name:
            seen_default = True
        elif seen_default:
            parts[i] = part + " = ..."
            changed = True
    return head + ",".join(parts) + tail if changed else line


def repair(text: str) -> str:
    shadowed_bool = re.search(r"^bool: ", text, re.MULTILINE) is not None
    lines = []
    for line in text.splitlines():
        if line.strip() == "import tensorrt_libs as tensorrt_libs":
            continue
        is_def = line.lstrip().startswith("def ")
        if is_def:
            line = _fix_default_order(_IN_PARAM.sub("in_", line))
        if shadowed_bool and (is_def or _ANNOTATED.match(line)):
            line = _BOOL.sub("_builtins.bool", line)
        lines.append(line)
    head = 1 if lines and lines[0].startswith("from __future__") else 0
    if shadowed_bool:
        lines.insert(head, "import builtins as _builtins")
    if "typing_extensions." in text and not re.search(r"^import typing_extensions", text, re.MULTILINE):
        lines.insert(head, "import typing_extensions")
    return "\n".join(lines) + "\n"


def generate(out: Path) -> list[Path]:
    """Write the repaired stubs under `out`; return the files written. Raises SyntaxError if one still fails."""
    written = []
    for rel, src in sorted(stub_sources().items()):
        text = repair(src.read_text())
        ast.parse(text, filename=rel)  # the whole point: mypy must be able to read every file
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.is_file() or dest.read_text() != text:
            dest.write_text(text)
        written.append(dest)
    (out / ".gitignore").write_text("# generated by tools/trt_typings.py\n*\n")
    (out / "VERSION").write_text(f"{DIST}=={metadata.version(DIST)}\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="typings", help="output directory (default: typings)")
    args = parser.parse_args(argv)
    files = generate(Path(args.out))
    print(f"{DIST}=={metadata.version(DIST)}: {len(files)} stub files repaired into {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
