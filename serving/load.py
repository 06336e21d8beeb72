"""Load generator: N concurrent clients x M requests against a running server, loopback only, bounded in count and
time; valid requests of mixed shapes checked against `runtime.load` of the same artifact, malformed ones
(serving/malformed.py) interleaved and checked for their named refusal.

    python -m serving.load --url 127.0.0.1:8000 --artifact artifacts/aoti-fp32-image-448.pt2 --clients 8 --requests 50

Writes `<out>/load.json`, `<out>/load.md` (the table) and `<out>/load.png` (latency over time and its histogram).
A valid answer is "correct" when it is within the batch-composition bound of the reference computed alone
(TOLERANCE: Triton's dynamic batcher may run it in a larger batch, which changes the kernels' blocking, not the
math); how many were bit-identical is reported beside it. Against a packed artifact (one item a request, requests of
different shapes packed together: serving/model_config.py) the reference is the item run alone,
`runtime.load(artifact).run_packed([item])`, and the valid pool draws one-item requests of mixed T, H and W.
The server's batching ratio (Triton's nv_inference_count / nv_inference_exec_count over the run) is in the report.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.profiles import PackedProfile, Profile, Range, ShapeProfile

from .client import PROTOCOLS, EncoderClient, host_of
from .malformed import Malformed, cases

if TYPE_CHECKING:
    from runtime import Runner

# rel L2 bound between a served answer and the same input run alone: float rounding of a different batch
# composition, far below each precision's inherent error (parity/tolerances.json: fp32 ~7e-7 x layers, bf16 ~1e-2).
TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1e-2}
STATUSES = ("correct", "wrong", "refused as expected", "refused otherwise", "accepted malformed", "connection error")


@dataclass
class Sample:
    client: int
    index: int
    case: str  # "valid B=.. T=.. HxW" or the malformed case's name
    start_s: float
    latency_ms: float
    status: str
    exact: bool = False
    detail: str = ""


@dataclass
class Report:
    url: str
    protocol: str
    clients: int
    requests_per_client: int
    wall_s: float
    sent: int
    not_sent: int
    counts: dict[str, int]
    valid_throughput_rps: float
    p50_ms: float
    p99_ms: float
    exact: int
    max_rel_l2: float
    server: dict[str, float] = field(default_factory=dict)  # Triton metrics over the run (if a metrics URL was given)
    samples: list[Sample] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("clients x requests", f"{self.clients} x {self.requests_per_client} ({self.protocol})"),
            ("sent / not sent (time bound)", f"{self.sent} / {self.not_sent}"),
            ("wall time", f"{self.wall_s:.2f} s"),
            ("valid throughput", f"{self.valid_throughput_rps:.1f} req/s"),
            ("valid latency p50 / p99", f"{self.p50_ms:.1f} / {self.p99_ms:.1f} ms"),
            *((status, str(self.counts.get(status, 0))) for status in STATUSES),
            ("bit-identical to runtime.load alone", f"{self.exact} of {self.counts.get('correct', 0)}"),
            ("max rel L2 vs runtime.load alone", f"{self.max_rel_l2:.2e}"),
        ]
        if self.server:
            srv = self.server
            rows += [
                ("server: samples / batch executions", f"{srv['samples']:.0f} / {srv['executions']:.0f}"),
                ("server: batching ratio (samples per execution)", f"{srv['batching_ratio']:.2f}"),
                ("server: compute per request (its execution's)", f"{srv['compute_ms_per_request']:.1f} ms"),
                ("server: queue time per request", f"{srv['queue_ms_per_request']:.1f} ms"),
            ]
        lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
        return "\n".join(lines)


def is_loopback(url: str) -> bool:
    host = host_of(url)
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = [str(info[4][0]) for info in infos]
    return bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses)


def valid_pool(
    profile: Any, count: int, seed: int, wire: Any, shapes: list[tuple[int, int, int, int]] | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`count` valid requests of mixed shapes across `profile` (min, opt, max and seeded draws), or of `shapes`
    ((B, T, H, W) each, e.g. small ones for a cheap CI run). A packed profile's requests are one item each (B = 1)."""
    rng = np.random.default_rng(seed)
    p = profile.patch
    batch = Range(1, 1, 1) if isinstance(profile, PackedProfile) else profile.batch
    if shapes is not None:
        count = len(shapes)
    shapes = (
        list(shapes)
        if shapes is not None
        else [
            (getattr(batch, w), *(getattr(getattr(profile, a), w) for a in ("frames", "height", "width")))
            for w in ("min", "opt", "max")
        ]
    )
    while len(shapes) < count:
        b, t = (int(rng.integers(r.min, r.max + 1)) for r in (batch, profile.frames))
        h, w = (p * int(rng.integers(r.min // p, r.max // p + 1)) for r in (profile.height, profile.width))
        shapes.append((b, t, h, w))
    pool = []
    for b, t, h, w in shapes[:count]:
        grid = np.stack(np.meshgrid(np.arange(t), np.arange(h // p), np.arange(w // p), indexing="ij"), -1)
        pos = np.repeat(grid.reshape(1, -1, 3), b, 0).astype(np.int64)
        pv = rng.standard_normal((b, 3, t, h, w), dtype=np.float32).astype(wire)
        pool.append((f"valid B={b} T={t} {h}x{w}", pv, pos))
    return pool


def rel_l2(a: np.ndarray, r: np.ndarray) -> float:
    a64, r64 = a.astype(np.float64), r.astype(np.float64)
    return float(np.linalg.norm(a64 - r64)) / max(float(np.linalg.norm(r64)), 1e-30)


METRICS = {
    "samples": "nv_inference_count",
    "executions": "nv_inference_exec_count",
    "requests": "nv_inference_request_success",
    "compute_us": "nv_inference_compute_infer_duration_us",
    "queue_us": "nv_inference_queue_duration_us",
    "pending": "nv_inference_pending_request_count",
}


def scrape(metrics_url: str) -> dict[str, float]:
    """Triton's Prometheus counters of interest, summed over models and versions."""
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    out = dict.fromkeys(METRICS, 0.0)
    for line in text.splitlines():
        for key, name in METRICS.items():
            if line.startswith(name + "{"):
                out[key] += float(line.split()[-1])
    return out


def server_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    d = {k: after[k] - before[k] for k in METRICS}
    return {
        "samples": d["samples"],
        "executions": d["executions"],
        "batching_ratio": d["samples"] / max(d["executions"], 1.0),
        # Triton adds an execution's compute time to the counter once per request it carried (core
        # src/infer_stats.cc UpdateSuccess), so the counter divides by requests, not executions.
        "compute_ms_per_request": d["compute_us"] / 1e3 / max(d["requests"], 1.0),
        "queue_ms_per_request": d["queue_us"] / 1e3 / max(d["requests"], 1.0),
    }


def is_connection_error(exc: BaseException) -> bool:
    """The server was unreachable or went away (not an answer from it)."""
    if isinstance(exc, OSError):  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError, timeouts
        return True
    status = str(getattr(exc, "status", lambda: "")() or "")
    text = str(exc).lower()
    return status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED") or any(
        w in text for w in ("connection", "connect", "broken pipe", "reset by peer", "socket")
    )


def reference(runner: Runner, pixel_values: np.ndarray, patch_positions: np.ndarray) -> np.ndarray:
    """The answer to one request computed alone by `runtime.load`: the batch as one call, or a packed artifact's
    item run alone (`run_packed([item])`)."""
    if runner.packed:
        out = runner.run_packed([(pixel_values, patch_positions)])[0]
    else:
        out = runner(pixel_values, patch_positions)
    return np.asarray(out.float().cpu().numpy())


def max_batch(profile: Profile) -> int:
    """The most samples one request may carry: a batched profile's max batch; a packed one takes one item a request."""
    return profile.batch.max if isinstance(profile, ShapeProfile) else 1


@dataclass
class _Workload:
    """What every client sends: the valid pool with each sample's reference, the malformed cases, the wire types."""

    pool: list[tuple[str, np.ndarray, np.ndarray]]
    references: list[np.ndarray]
    bad_cases: list[Malformed]
    types: dict[str, str]
    tolerance: float
    max_batch: int
    malformed_every: int

    def request(self, cid: int, j: int, requests: int) -> tuple[str, np.ndarray, np.ndarray, Malformed | None]:
        """Client `cid`'s `j`-th request: a pool sample, or every `malformed_every`-th one made malformed."""
        name, pv, pos = self.pool[(cid + j) % len(self.pool)]
        every = self.malformed_every
        if not every or j % every != every - 1:
            return name, pv, pos, None
        bad = self.bad_cases[((cid * requests + j) // every) % len(self.bad_cases)]
        return bad.name, pv, pos, bad


def _workload(
    runner: Runner,
    types: dict[str, str],
    pool_size: int,
    seed: int,
    shapes: list[tuple[int, int, int, int]] | None,
    malformed_every: int,
) -> _Workload:
    from .client import numpy_dtype

    pool = valid_pool(runner.profile, pool_size, seed, numpy_dtype(types["pixel_values"]), shapes)
    return _Workload(
        pool=pool,
        references=[reference(runner, pv, pos) for _, pv, pos in pool],
        bad_cases=cases(runner.profile.height.max, packed=runner.packed),
        types=types,
        tolerance=TOLERANCE[runner.precision],
        max_batch=max_batch(runner.profile),
        malformed_every=malformed_every,
    )


def _send(client: EncoderClient, work: _Workload, cid: int, j: int, requests: int, t0: float) -> Sample:
    """One request, timed and classified (correct/wrong against its reference, or how it was refused)."""
    name, pv, pos, bad = work.request(cid, j, requests)
    sent_types = work.types
    if bad is not None:
        pv, pos, sent_types = bad.make(pv, pos, work.types, work.max_batch)
    ref = work.references[(cid + j) % len(work.pool)]
    start = time.perf_counter()
    sample = Sample(cid, j, name, start - t0, 0.0, "")
    try:
        out = client.infer(pv, pos, sent_types)
        sample.latency_ms = (time.perf_counter() - start) * 1e3
        if bad is not None:
            sample.status = "accepted malformed"
        else:
            err = rel_l2(out.astype(np.float32), ref)
            sample.exact = bool(out.shape == ref.shape and np.array_equal(out.astype(np.float32), ref))
            ok = out.shape == ref.shape and np.isfinite(out).all() and err <= work.tolerance
            sample.status = "correct" if ok else "wrong"
            sample.detail = f"rel_l2 {err:.2e}"
    except Exception as exc:
        sample.latency_ms = (time.perf_counter() - start) * 1e3
        sample.detail = str(exc)[:300]
        if is_connection_error(exc):
            sample.status = "connection error"
        elif bad is not None and bad.matches(str(exc)):
            sample.status = "refused as expected"
        else:
            sample.status = "refused otherwise"
    return sample


def run_load(
    url: str,
    artifact: str | Path,
    *,
    protocol: str = "http",
    clients: int = 8,
    requests: int = 50,
    malformed_every: int = 5,
    timeout_s: float = 120.0,
    seed: int = 0,
    pool_size: int = 6,
    shapes: list[tuple[int, int, int, int]] | None = None,
    stop: threading.Event | None = None,
    metrics_url: str | None = None,
    progress: bool = False,
) -> Report:
    """Run the load and return its report (see the module docstring)."""
    import runtime

    if not is_loopback(url):
        raise ValueError(f"the load generator talks to loopback addresses only, got {url!r}")
    runner = runtime.load(artifact)
    probe = EncoderClient(url, protocol)
    types = probe.input_types()
    probe.close()
    work = _workload(runner, types, pool_size, seed, shapes, malformed_every)
    samples: list[Sample] = []
    lock = threading.Lock()
    before = scrape(metrics_url) if metrics_url else None
    deadline = time.monotonic() + timeout_s
    t0 = time.perf_counter()

    def worker(cid: int) -> None:
        client = EncoderClient(url, protocol, timeout_s=min(60.0, timeout_s))
        try:
            for j in range(requests):
                if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                    return
                sample = _send(client, work, cid, j, requests, t0)
                with lock:
                    samples.append(sample)
                    if progress and len(samples) % 50 == 0:
                        print(f"  {len(samples)}/{clients * requests} requests", file=sys.stderr, flush=True)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + 5))
    wall = time.perf_counter() - t0
    server = server_figures(before, scrape(metrics_url)) if before is not None and metrics_url else {}
    with lock:
        done = sorted(samples, key=lambda s: s.start_s)
    return _report(url, protocol, clients, requests, wall, done, server)


def _report(
    url: str, protocol: str, clients: int, requests: int, wall: float, done: list[Sample], server: dict[str, Any]
) -> Report:
    """The figures of a finished load: counts by status, throughput and latency of correct answers, exactness."""
    counts = {s: sum(1 for x in done if x.status == s) for s in STATUSES}
    valid = [x.latency_ms for x in done if x.status == "correct"]
    errs = [float(x.detail.split()[-1]) for x in done if x.status == "correct"]
    return Report(
        url=url,
        protocol=protocol,
        clients=clients,
        requests_per_client=requests,
        wall_s=wall,
        sent=len(done),
        not_sent=clients * requests - len(done),
        counts=counts,
        valid_throughput_rps=len(valid) / wall if wall > 0 else 0.0,
        p50_ms=float(np.percentile(valid, 50)) if valid else float("nan"),
        p99_ms=float(np.percentile(valid, 99)) if valid else float("nan"),
        exact=sum(1 for x in done if x.exact),
        max_rel_l2=max(errs, default=0.0),
        server=server,
        samples=done,
    )


def write_report(report: Report, out: Path, title: str = "") -> list[Path]:
    """load.json, load.md and load.png under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out / "load.md").write_text((f"{title}\n\n" if title else "") + report.table() + "\n")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for status, colour in (
        ("correct", "tab:blue"),
        ("refused as expected", "tab:orange"),
        ("connection error", "tab:red"),
        ("wrong", "black"),
    ):
        xs = [s.start_s for s in report.samples if s.status == status]
        ys = [s.latency_ms for s in report.samples if s.status == status]
        if xs:
            ax1.scatter(xs, ys, s=6, c=colour, label=f"{status} ({len(xs)})")
    ax1.set(xlabel="request start (s)", ylabel="latency (ms)", title="latency over time")
    ax1.legend(fontsize=8)
    valid = [s.latency_ms for s in report.samples if s.status == "correct"]
    if valid:
        ax2.hist(valid, bins=30, color="tab:blue")
        for q, name in ((report.p50_ms, "p50"), (report.p99_ms, "p99")):
            ax2.axvline(q, color="k", ls="--", lw=1)
            ax2.text(q, ax2.get_ylim()[1] * 0.9, name, fontsize=8)
    ax2.set(
        xlabel="latency of valid requests (ms)", ylabel="requests", title=f"{report.valid_throughput_rps:.1f} req/s"
    )
    fig.suptitle(title or f"{report.clients} clients x {report.requests_per_client} requests, {report.protocol}")
    fig.tight_layout()
    fig.savefig(out / "load.png", dpi=100)
    plt.close(fig)
    return [out / "load.json", out / "load.md", out / "load.png"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="127.0.0.1:8000", help="server address, loopback only (gRPC: port 8001)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="http")
    p.add_argument("--metrics", default="", help="Triton metrics URL (default: port 8002 of --url's host)")
    p.add_argument("--artifact", required=True, help="the artifact the server serves (profile and references)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=50, help="requests per client")
    p.add_argument("--malformed-every", type=int, default=5, help="every k-th request is malformed (0: none)")
    p.add_argument("--timeout-s", type=float, default=300.0, help="stop sending after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/serving-load"))
    args = p.parse_args(argv)
    try:
        report = run_load(
            args.url,
            args.artifact,
            protocol=args.protocol,
            clients=args.clients,
            requests=args.requests,
            malformed_every=args.malformed_every,
            timeout_s=args.timeout_s,
            seed=args.seed,
            metrics_url=args.metrics or f"http://{host_of(args.url)}:8002/metrics",
            progress=True,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    for path in write_report(report, args.out, f"{Path(args.artifact).name} via {args.url}"):
        print(f"wrote {path}")
    bad = report.counts["wrong"] + report.counts["refused otherwise"] + report.counts["accepted malformed"]
    return 1 if bad or report.not_sent else 0


if __name__ == "__main__":
    sys.exit(main())
