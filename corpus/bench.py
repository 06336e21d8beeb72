"""`python -m corpus.bench`: items/s of the corpus pipeline against `python -m runtime embed` file by file, on the
same corpus and artifact, and of the pipeline on a local Ray instance beside them.

    python -m corpus.bench --artifact artifacts/tiny/onnx-fp32-test-small.onnx --model checkpoints/synthetic-tiny

Each row is one wall-clock measurement of whole commands, started the way a user starts them (a fresh Python
process: imports, processor and artifact loading included): the file-by-file baseline runs one `runtime embed`
process per file (broken files too, which fail); the pipeline runs once over the folder into a fresh OUT. INPUT
defaults to the sample corpus (`corpus.sample`, written into the work folder). The report (Markdown) names the
CPU (lscpu's model name), its cores, and the load average before and after, since other jobs share the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contract.manifest import read_manifest

from .sample import write_sample
from .sources import list_items

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    name: str
    items: int
    embedded: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    lines = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")]
    return lines[0] if lines else "unknown CPU"


def python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def per_file(files: list[str], artifact: str, model: str, mode: str, work: Path) -> Measured:
    """`python -m runtime embed FILE` once per file, one after the other."""
    out = work / "per-file"
    out.mkdir(parents=True, exist_ok=True)
    embedded = 0
    started = time.perf_counter()
    for i, file in enumerate(files):
        done = python("-m", "runtime", "embed", file, "--artifact", artifact, "--preprocessor", model, "--mode", mode,
                      "--out", str(out / f"{i}.safetensors"))  # fmt: skip
        embedded += done.returncode == 0
    return Measured("`python -m runtime embed FILE`, file by file", len(files), embedded, time.perf_counter() - started)


def pipeline(source: Path, artifact: str, model: str, mode: str, work: Path, name: str, *extra: str) -> Measured:
    """`python -m corpus` once over the whole input into a fresh output folder."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    done = python("-m", "corpus", str(source), "--out", str(out), "--artifact", artifact, "--model", model,
                  "--mode", mode, "--no-progress", *extra)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: python -m corpus {' '.join(extra)} failed:\n{done.stderr[-2000:]}")
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["error"])
    embedded = sum(1 for e in table.column("error").to_pylist() if not e)
    return Measured(f"`python -m corpus {' '.join(extra)}`".replace(" `", "`"), table.num_rows, embedded, seconds)


def table(results: list[Measured], base: float | None) -> list[str]:
    """A Markdown table; the last column compares with `base` items/s (the file-by-file rate) when given."""
    lines = ["| command | items | embedded | wall s | items/s |" + (" × file by file |" if base else ""),
             "|---|---:|---:|---:|---:|" + ("---:|" if base else "")]  # fmt: skip
    for r in results:
        ratio = f" {r.rate / base:.1f} |" if base else ""
        lines.append(f"| {r.name} | {r.items} | {r.embedded} | {r.seconds:.1f} | {r.rate:.2f} |{ratio}")
    return lines


def header(artifact: str, mode: str, load: tuple[tuple[float, ...], ...]) -> list[str]:
    manifest = read_manifest(artifact, verify=False)
    averages = ["/".join(f"{x:.2f}" for x in value) for value in load]
    return [
        f"CPU: {cpu_model()} ({os.cpu_count()} cores); load average (1/5/15 min) before {averages[0]}, after "
        f"{averages[1]}; {dt.date.today().isoformat()}",
        f"artifact: {Path(artifact).name} ({manifest.kind} {manifest.precision}, profile {manifest.profile['name']}); "
        f"mode {mode}",
    ]


def copies_of(source: Path, copies: int, work: Path) -> Path:
    """A folder holding `copies` copies of `source` (symbolic links to its files: the same bytes to decode)."""
    folder = work / f"{copies}-copies"
    shutil.rmtree(folder, ignore_errors=True)
    for k in range(copies):
        for item in list_items(source):
            link = folder / f"copy-{k}" / Path(item.file).relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(item.file).resolve())
    return folder


def pipelines(source: Path, args: argparse.Namespace, work: Path) -> list[Measured]:
    """The one-machine pipeline without decode workers (no overlap), with them, and on Ray."""
    workers = ["--workers", str(args.workers)] if args.workers is not None else []
    runs = [("inline", "--workers", "0"), ("local", *workers)]
    if not args.skip_ray:
        runs.append(("ray", "--ray", "--ray-cpus", str(args.ray_cpus)))
    return [pipeline(source, args.artifact, args.model, args.mode, work, name, *extra) for name, *extra in runs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus.bench", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--artifact", required=True, help="the artifact both run")
    parser.add_argument("--model", required=True, help="checkpoint folder whose preprocessor_config.json to use")
    parser.add_argument("--input", type=Path, help="a folder to embed (default: the sample corpus)")
    parser.add_argument("--mode", default="crop", choices=("crop", "native", "codec"))
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, deleted after)")
    parser.add_argument("--workers", type=int, help="decode workers of the one-machine run (default: its own)")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray instance")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--copies", type=int, default=0, help="also run the pipelines alone on N copies of INPUT")
    parser.add_argument("--report", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corpus-bench-") as tmp:
        work = args.work or Path(tmp)
        source = args.input or work / "sample"
        if args.input is None:
            shutil.rmtree(source, ignore_errors=True)
            write_sample(source)
        files = [item.file for item in list_items(source)]
        load_before = os.getloadavg()
        baseline = per_file(files, args.artifact, args.model, args.mode, work)
        results = [baseline, *pipelines(source, args, work)]
        lines = [*table(results, baseline.rate)]
        if args.copies:
            bigger = copies_of(source, args.copies, work)
            lines += ["", f"The pipelines alone on {args.copies} copies of the corpus:", ""]
            lines += table(pipelines(bigger, args, work), None)
        lines = [*header(args.artifact, args.mode, (load_before, os.getloadavg())), "", *lines]
    print("\n".join(lines))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
