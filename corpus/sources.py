"""What to embed: INPUT (a folder, a text file of paths, or a Parquet/CSV manifest) -> the ordered list of items.

- a folder: every regular file under it, recursively, in sorted order of its relative path; hidden files and
  folders (names starting with '.') are skipped. A file that is neither an image nor a video by its extension is
  still an item: it becomes an error row ("unsupported type"), so nothing in the folder goes unreported.
- a text file (any other suffix, e.g. `.txt`): one path per line; blank lines and lines starting with '#' skipped.
- a manifest, `.parquet`/`.pq` or `.csv`: the column `--path-column` (default `path`) names the files; optionally
  `--selection-column` names, per row, a codec selection file ([t, h, w] rows, .npy or .json; codec mode only; an
  empty cell means "score the clip as usual").

Relative paths in a list or manifest are resolved against the folder of the list itself; the output's `path`
column keeps each entry as written (for a folder: INPUT joined with the file's relative path).
A user's mistake (no such INPUT, no such column, an empty path cell) is one `SourceError` line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

# fmt: off
IMAGE_EXTENSIONS = frozenset((
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".avif",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi", ".jp2", ".j2k", ".ico",
))
VIDEO_EXTENSIONS = frozenset((
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".3gp",
    ".ogv", ".y4m", ".h264", ".264", ".h265", ".265", ".hevc",
))
# fmt: on
MANIFEST_SUFFIXES = (".parquet", ".pq", ".csv")


class SourceError(ValueError):
    """INPUT cannot be listed (missing, unreadable, no such column, an empty path); the message is one line."""


@dataclass(frozen=True)
class Item:
    """One input: `path` as listed (the output's `path`), `file` where it is read, its codec selection file if any."""

    path: str
    file: str
    selection: str | None = None


def media_type(path: str | os.PathLike[str]) -> str | None:
    """'image' or 'video' by the file's extension (case-insensitive), None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def list_items(
    spec: str | os.PathLike[str],
    *,
    path_column: str = "path",
    selection_column: str | None = None,
    exclude: Path | None = None,
) -> list[Item]:
    """The items of INPUT in order (see the module docstring); `exclude` is a folder never listed (the output)."""
    root = Path(spec)
    if not root.exists():
        raise SourceError(f"{spec}: no such file or folder (INPUT is a folder, a text file of paths or a manifest)")
    if root.is_dir():
        if selection_column:
            raise SourceError(f"{spec}: a folder has no columns; --selection-column needs a Parquet or CSV manifest")
        return folder_items(root, exclude)
    if root.suffix.lower() in MANIFEST_SUFFIXES:
        return manifest_items(root, path_column, selection_column)
    if selection_column:
        raise SourceError(f"{spec}: a text file of paths has no columns; --selection-column needs a manifest")
    return text_items(root)


def folder_items(root: Path, exclude: Path | None = None) -> list[Item]:
    skip = exclude.resolve() if exclude is not None else None
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)]
        for name in files:
            if not name.startswith("."):
                found.append(((here / name).relative_to(root).as_posix(), here / name))
    return [Item(path=str(root / rel), file=str(file)) for rel, file in sorted(found)]


def _resolve(entry: str, base: Path) -> str:
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else base / path)


def text_items(listing: Path) -> list[Item]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{listing}: cannot read the list of paths ({exc})") from None
    entries = [line.strip() for line in lines]
    base = listing.parent
    return [Item(path=e, file=_resolve(e, base)) for e in entries if e and not e.startswith("#")]


def read_manifest_table(manifest: Path) -> pa.Table:
    """A Parquet or CSV manifest as an Arrow table (SourceError if pyarrow cannot read it)."""
    import pyarrow.csv
    import pyarrow.parquet

    try:
        if manifest.suffix.lower() == ".csv":
            return pyarrow.csv.read_csv(manifest)
        return pyarrow.parquet.read_table(manifest)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{manifest}: cannot read the manifest ({exc})") from None


def _column(table: pa.Table, manifest: Path, name: str, option: str) -> list[str | None]:
    if name not in table.column_names:
        raise SourceError(f"{manifest}: no column {name!r} ({option}); its columns: {', '.join(table.column_names)}")
    return [None if v is None else str(v) for v in table.column(name).to_pylist()]


def manifest_items(manifest: Path, path_column: str, selection_column: str | None) -> list[Item]:
    table = read_manifest_table(manifest)
    paths = _column(table, manifest, path_column, "--path-column")
    selections: list[str | None] = [None] * len(paths)
    if selection_column:
        selections = _column(table, manifest, selection_column, "--selection-column")
    base = manifest.parent
    items = []
    for row, (path, selection) in enumerate(zip(paths, selections, strict=True)):
        if not path or not path.strip():
            raise SourceError(f"{manifest}: row {row} has an empty {path_column!r} cell")
        sel = _resolve(selection, base) if selection and selection.strip() else None
        items.append(Item(path=path, file=_resolve(path, base), selection=sel))
    return items


def items_sha256(items: list[Item]) -> str:
    """sha256 of the listing (the files as resolved, in order, and their selections): the job's input identity."""
    digest = hashlib.sha256()
    for item in items:
        selection = os.path.abspath(item.selection) if item.selection else None
        digest.update(json.dumps([os.path.abspath(item.file), selection]).encode() + b"\n")
    return digest.hexdigest()
