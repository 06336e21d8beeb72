"""The contract layer and the one description per backend (issue 12).

- `runtime` runs an artifact with only its backend library: importing it, loading an ONNX artifact and running it
  imports no module of `export`, `models`, `transformers` or `onnx` (checked in a fresh interpreter).
- `contract` imports only torch and the standard library (read from the source).
- No `runtime` module imports `export`, `models`, `parity`, `benchmarks` or `serving` at module level.
- Every registry agrees with `contract.backends.BACKENDS`, and each builder and runner says it is of its kind.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

from contract.backends import BACKENDS, KINDS, backend, resolve
from contract.compat import TORCH_RANGE, TRANSFORMERS_RANGE
from contract.positions import grid_positions

ROOT = Path(__file__).resolve().parent.parent
TOOLCHAIN = ("export", "models", "transformers", "onnx", "parity", "benchmarks", "serving")


def test_runtime_runs_an_onnx_artifact_without_the_export_toolchain(tiny_artifacts_fp32: dict[str, Path]) -> None:
    code = (
        "import json, sys, torch, runtime\n"
        f"r = runtime.load({str(tiny_artifacts_fp32['onnx'])!r})\n"
        "pv = torch.randn(1, 3, 1, 28, 28)\n"
        "out = r(pv, runtime.image_positions(pv))\n"
        "top = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps({'shape': list(out.shape), 'finite': bool(torch.isfinite(out).all()), 'modules': top}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"][:2] == [1, 4] and report["finite"]
    assert "onnxruntime" in report["modules"]  # it did run on its backend
    assert not [m for m in TOOLCHAIN if m in report["modules"]], report["modules"]


def _imports(path: Path, module_level_only: bool = False, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file (relative imports resolved to their package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # `if TYPE_CHECKING:` blocks too
        nodes = [n for node in nodes for n in ([node] if not isinstance(node, ast.If) else node.body)]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            found.append((node.lineno, base))
    return found


def test_contract_imports_only_torch_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"torch", "__future__", "contract"}
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "contract").rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] not in allowed
    ]
    assert not bad, bad


def test_no_runtime_module_imports_the_toolchain_at_module_level() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "runtime").rglob("*.py"))
        for line, name in _imports(path, module_level_only=True)
        if name.split(".")[0] in TOOLCHAIN
    ]
    assert not bad, bad


def test_the_import_checker_sees_a_planted_toolchain_import(tmp_path: Path) -> None:
    planted = tmp_path / "runtime" / "backends" / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(
        "from typing import TYPE_CHECKING\nfrom ..base import Runner\n"
        "if TYPE_CHECKING:\n    from export.base import B\n"
        "def f():\n    import models\n"
    )
    assert [n for _, n in _imports(planted, True, tmp_path)] == ["typing", "runtime.base", "export.base"]
    assert [n for _, n in _imports(planted, False, tmp_path)][-1] == "models"


def test_every_registry_is_derived_from_the_backend_descriptions() -> None:
    import export
    from contract.manifest import KINDS as MANIFEST_KINDS
    from contract.manifest import SUFFIX
    from export.__main__ import ENGINE_KINDS
    from runtime import loader

    assert MANIFEST_KINDS == KINDS == tuple(export.BUILDERS) == tuple(loader.BACKENDS)
    for kind, b in BACKENDS.items():
        assert SUFFIX[kind] == b.suffix and export.BUILDERS[kind] == b.builder and loader.BACKENDS[kind] == b.runner
        assert loader.MOVABLE[kind] == b.devices
        assert (kind in ENGINE_KINDS) == b.multi_profile
        # the classes named are of this kind (imported here: this machine has every builder's and runner's library
        # except TensorRT's runtime, whose modules import it lazily)
        for spec in (b.builder, b.runner):
            assert resolve(spec).kind == kind, spec


def test_every_per_kind_choice_is_read_from_the_descriptions() -> None:
    """What export all, parity, serving, the GPU check and the C++ runtime decide per kind is a field of the kind's
    description: each of their tables equals the one derived from BACKENDS here."""
    from parity.__main__ import AUTO_EXPORT_CPU, AUTO_EXPORT_CUDA
    from tools.gpu_check.plan import TINY_KINDS

    assert tuple(k for k, b in BACKENDS.items() if "cpu" in b.auto_export) == AUTO_EXPORT_CPU
    assert tuple(k for k, b in BACKENDS.items() if "cuda" in b.auto_export) == AUTO_EXPORT_CUDA
    assert TINY_KINDS == ("pt2", "aoti", "onnx", "torchscript")  # built for CUDA without TensorRT, run there
    assert [k for k, b in BACKENDS.items() if b.onnx_graph] == ["onnx"]  # what from_onnx kinds convert
    # The C++ runtime's table: one {"kind", factory} line per kind described cpp=True.
    source = (ROOT / "runtime" / "cpp" / "src" / "runtime.cpp").read_text()
    table = source[source.index("backend_factories() {") : source.index("return table;")]
    assert sorted(re.findall(r'\{"([\w-]+)", make_\w+_backend\}', table)) == sorted(
        k for k, b in BACKENDS.items() if b.cpp
    )


def test_device_rules_and_side_files_read_from_the_descriptions() -> None:
    assert [k for k, b in BACKENDS.items() if b.movable] == ["pt2", "onnx", "torchscript"]
    assert backend("onnx").side_names("artifacts/onnx-fp32-x.onnx") == ["onnx-fp32-x.onnx.data"]
    assert backend("openvino").side_names("openvino-bf16-x.xml") == ["openvino-bf16-x.bin"]
    try:
        backend("tflite")
    except KeyError as exc:
        assert "tflite" in str(exc) and "openvino" in str(exc)
    else:
        raise AssertionError("an unknown kind must be refused")


def test_the_model_default_grid_is_the_contract_grid(tiny_dir: Path) -> None:
    from models import load_model

    model = load_model(tiny_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    rope = model.video_rope
    grid = grid_positions(1, 3, 2, 4)[0]
    assert grid[:5].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 1, 0]]
    assert torch.equal(rope(3, 2, 4), rope.forward_from_positions(grid))


def test_pyproject_states_the_supported_versions() -> None:
    """pyproject.toml's torch and transformers pins are the range contract/compat.py supports (it said
    transformers>=5.7 and no upper bound for either)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, (low, high) in (("torch", TORCH_RANGE), ("transformers", TRANSFORMERS_RANGE)):
        major, minor = high.split(".")
        assert f"{name}>={low},<{major}.{int(minor) + 1}" in deps, (name, deps)
    installed = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    assert (
        tuple(int(x) for x in TORCH_RANGE[0].split("."))
        <= installed
        <= tuple(int(x) for x in TORCH_RANGE[1].split("."))
    )
