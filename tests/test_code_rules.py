"""Rules of the source tree, read from the source with `ast` (nothing is imported or run):

- No module branches on an artifact kind by its name outside `contract/` and the kind's own builder and runner
  modules: a per-kind fact belongs in the kind's `Backend(...)` description (contract/backends.py). Branching is a
  comparison of an expression with a kind's name (`kind == "trt"`, `m.kind in ("pt2", "onnx")`), a `match` case on
  one, or a dict literal keyed by two or more kind names (a per-kind table).
- No module imports an underscore name of another package (`from runtime.x import _helper`, `x._helper`).
- No function or method outside `tests/` is longer than 80 lines (the published checkpoint's own modeling code,
  copied verbatim into `models/remote_code/`, is upstream's).

Each checker is run once on a planted file so that a checker that sees nothing cannot pass unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from contract.backends import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contract", "models", "export", "runtime", "parity", "benchmarks", "serving", "corpus", "tools")
KIND_NAMES = frozenset(BACKENDS)
# A kind's own two modules may name it: its builder and its runner.
OWN_MODULES = {spec.partition(":")[0] for b in BACKENDS.values() for spec in (b.builder, b.runner)}
MAX_FUNCTION_LINES = 80
UPSTREAM = ("models/remote_code",)  # the published checkpoint's code, kept as published


def bundle_files(packages: tuple[str, ...] = PACKAGES, root: Path = ROOT) -> list[Path]:
    return [path for pkg in packages for path in sorted((root / pkg).rglob("*.py"))]


def _kind_literals(node: ast.AST) -> list[str]:
    """The kind names a constant or a literal tuple/list/set holds."""
    elements = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [e.value for e in elements if isinstance(e, ast.Constant) and e.value in KIND_NAMES]


def kind_branches(path: Path) -> list[str]:
    """Where `path` branches on a kind's name (see the module docstring), as 'line: what' in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = [k for side in sides for k in _kind_literals(side)]
            literal_only = all(isinstance(s, ast.Constant) or _kind_literals(s) for s in sides)
            if names and not literal_only:
                found.append((node.lineno, f"compares with {names}"))
        elif isinstance(node, ast.MatchValue) and _kind_literals(node.value):
            found.append((node.lineno, f"match case {_kind_literals(node.value)}"))
        elif isinstance(node, ast.Dict):
            keys = [k for key in node.keys if key is not None for k in _kind_literals(key)]
            if len(keys) >= 2:
                found.append((node.lineno, f"a table keyed by {keys}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def _module(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def test_no_module_branches_on_a_kind_name() -> None:
    outside = [
        p for p in bundle_files() if p.parts[len(ROOT.parts)] != "contract" and _module(p, ROOT) not in OWN_MODULES
    ]
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in outside for hit in kind_branches(p)]
    assert not found, "a per-kind fact belongs in contract/backends.py: " + "; ".join(found)


def test_the_kind_checker_sees_planted_branches(tmp_path: Path) -> None:
    original = (ROOT / "export" / "artifact.py").read_text()
    assert not kind_branches(ROOT / "export" / "artifact.py")
    planted = tmp_path / "artifact.py"
    planted.write_text(
        original
        + "\n\ndef engine_name(kind, names):\n    return '+'.join(names) if kind == 'trt' else names[0]\n"
        + "\n\ndef movable(m):\n    return m.kind in ('pt2', 'onnx')\n"
        + "\n\nORDER = {'onnx': 1, 'aoti': 2}\n"
        + "\n\ndef rank(kind):\n    match kind:\n        case 'openvino':\n            return 1\n    return 2\n"
        + "\n\ndef fine(probe, art):\n    return probe == 'onnx-outputs' and art.kind == 'eager'\n"
    )
    hits = kind_branches(planted)
    assert [h.split(": ", 1)[1] for h in hits] == [
        "compares with ['trt']",
        "compares with ['pt2', 'onnx']",
        "a table keyed by ['onnx', 'aoti']",
        "match case ['openvino']",
    ], hits


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Underscore names `path` takes from another package of the bundle, as 'line: name'."""
    package = path.relative_to(root).parts[0]
    tree = ast.parse(path.read_text(), str(path))
    foreign: set[str] = set()  # local names bound to another package's modules
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] in PACKAGES and node.module.split(".")[0] != package:
                found += [f"{node.lineno}: {node.module}.{a.name}" for a in node.names if _private(a.name)]
                foreign |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES and a.name.split(".")[0] != package:
                    foreign.add(a.asname or a.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and _root_name(node.value) in foreign:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_no_module_imports_an_underscore_name_of_another_package() -> None:
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in bundle_files() for hit in private_imports(p)]
    assert not found, found


def test_the_private_import_checker_sees_planted_imports(tmp_path: Path) -> None:
    planted = tmp_path / "serving" / "x.py"
    planted.parent.mkdir()
    planted.write_text(
        "from runtime.validation import _shape, check_inputs\nimport export.trace as trace\nfrom serving import _own\n"
        "def f():\n    return trace._dims(), check_inputs, _own\n"
    )
    assert private_imports(planted, tmp_path) == ["1: runtime.validation._shape", "5: trace._dims"]


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods of `path` longer than `limit` lines (decorators excluded), as 'line name (n lines)'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_80_lines() -> None:
    files = [p for p in bundle_files() if not any(part in str(p.relative_to(ROOT)) for part in UPSTREAM)]
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in files for hit in long_functions(p)]
    assert not found, "cut these at their phases: " + "; ".join(found)


def test_the_length_checker_sees_a_planted_long_function(tmp_path: Path) -> None:
    planted = tmp_path / "x.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    planted.write_text(f"@staticmethod\ndef fits():\n{body}\n\ndef long():\n{body}    return 1\n")  # 80, 81 lines
    assert long_functions(planted) == ["84 long (81 lines)"]
