"""Write a Triton model repository for one artifact: `<out>/<model>/config.pbtxt` and `<out>/<model>/1/...`.

Native platforms take the artifact under Triton's default file name (`model.onnx` with its external data file
beside it under the name the graph records, `model.plan`, `model.pt`); the Python backend takes `model.py`
(serving/triton_model.py) and the artifact under its own name (also a packed artifact in rows, which Triton's ragged
batching cannot feed: model_config.runs_natively). The manifest is copied beside the artifact (Triton
ignores it; it records what was built, and `runtime.load` checks the artifact against it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from contract.backends import BACKENDS

from .artifacts import ArtifactInfo, ServingError
from .model_config import ServeOptions, model_config, runs_natively

NATIVE_FILE = {kind: b.triton[1] for kind, b in BACKENDS.items() if b.triton}  # contract/backends.py
MODEL_PY = Path(__file__).with_name("triton_model.py")


def write_repository(
    info: ArtifactInfo,
    out: str | os.PathLike[str],
    options: ServeOptions | None = None,
    *,
    python_backend: bool = False,
    link: bool = False,
    overwrite: bool = False,
) -> Path:
    """The model folder written under `out` (refused if it exists, unless `overwrite`).

    `link=True` symlinks the artifact files instead of copying them (the local server's throw-away repository).
    """
    options = options or ServeOptions()
    native = not python_backend and info.kind in NATIVE_FILE and runs_natively(info)
    params = dict(options.parameters)
    if not native:
        params.setdefault("artifact", info.path.name)
    options = ServeOptions(**{**options.__dict__, "parameters": params})
    text = model_config(info, options, python_backend=not native)  # before touching the disk: errors leave nothing

    folder = Path(out) / options.model_name
    if folder.exists():
        if not overwrite:
            raise ServingError(f"{folder} already exists; pass --overwrite to replace it")
        shutil.rmtree(folder)
    version = folder / "1"
    version.mkdir(parents=True)
    for src in info.files:
        target = NATIVE_FILE[info.kind] if native and src == info.path else src.name
        _place(src, version / target, link)
    if not native:
        shutil.copyfile(MODEL_PY, version / "model.py")
    (folder / "config.pbtxt").write_text(text)
    return folder


def _place(src: Path, dst: Path, link: bool) -> None:
    if not src.is_file():
        raise ServingError(f"{src}: missing (an artifact consists of {src.name} and its manifest)")
    if link:
        dst.symlink_to(src.resolve())
    else:
        shutil.copyfile(src, dst)
