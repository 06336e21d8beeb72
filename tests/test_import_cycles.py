"""No import cycles between the bundle's modules: the data flows models -> export -> runtime -> parity/benchmarks.

The graph is read from the source with `ast` (nothing is imported): every `import x` / `from x import y` anywhere in
a module (module level, inside functions and under `if TYPE_CHECKING:`: a deferred or type-only import is still a
dependency, and a cycle hidden that way is still one) that names a module of the bundle's packages. A package's
`__init__.py` is the node `pkg`; `from pkg import name` depends on `pkg.name` when that is a module, else on `pkg`;
importing `a.b.c` also depends on the packages `a` and `a.b` (their `__init__` runs first), except on the packages
the importing module itself lives in.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contract", "models", "export", "runtime", "parity", "benchmarks", "serving", "corpus")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def bundle_modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the tree."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The bundle module `name` lives in (a dotted name may be a module, a package, or an attribute of either)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                dep = _resolve(target, modules)
                if dep is not None and dep != name:
                    deps.add(dep)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first (except the packages `name` itself lives in).
        for dep in list(deps):
            parts = dep.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and parent != name and not name.startswith(parent + "."):
                    deps.add(parent)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete cycle through the component, e.g. 'a -> b -> a' (what to break)."""
    members = set(component)
    start = component[0]
    path = [start]
    seen = {start}
    while True:
        nxt = sorted(d for d in graph[path[-1]] if d in members)
        back = [d for d in nxt if d == start]
        if back and len(path) > 1:
            return " -> ".join([*path, start])
        fresh = [d for d in nxt if d not in seen]
        if not fresh:  # a shortcut back into the path closes a smaller cycle
            first = next(d for d in nxt if d in seen)
            return " -> ".join([*path[path.index(first) :], first])
        path.append(fresh[0])
        seen.add(fresh[0])


def test_graph_walker_finds_a_planted_cycle() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert cycle_path(graph, ["p.a", "p.b", "p.c"]) == "p.a -> p.b -> p.c -> p.a"


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Function-level, TYPE_CHECKING, relative (`.`, `..`), `from pkg import module` and `import pkg.module`."""
    files = {
        "p/__init__.py": "from .a import A\n",
        "p/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nA = 1\n",
        "p/b.py": "def f():\n    from p import c\n",
        "p/c.py": "import p.sub.d\n",
        "p/sub/__init__.py": "",
        "p/sub/d.py": "from .. import a\nfrom ..b import f\nimport os\n",
        "q/e.py": "from p import A\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(bundle_modules(tmp_path, ("p", "q")))
    assert graph == {
        "p": {"p.a"},
        "p.a": {"p.b"},
        "p.b": {"p.c"},
        "p.c": {"p.sub", "p.sub.d"},
        "p.sub": set(),
        "p.sub.d": {"p.a", "p.b"},
        "q.e": {"p"},
    }
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.sub.d"]]  # p.sub is not in it: nothing imports p.c back
    assert cycle_path(graph, find_cycles(graph)[0]) == "p.a -> p.b -> p.c -> p.sub.d -> p.a"


def test_no_import_cycles() -> None:
    graph = import_graph(bundle_modules())
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(cycle_path(graph, c) for c in cycles)
