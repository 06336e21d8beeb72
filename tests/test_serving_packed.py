"""Serving a packed artifact (issue 18): one item a request, requests of *different* shapes batched together.

Python backend (what runs here): the config's inputs are ragged, so Triton's dynamic batcher puts requests of
different shapes into one `execute`, which packs them (serving/batching.py run_packed_requests). Native
`onnxruntime_onnx` / `tensorrt_plan` configs for flat packed graphs are checked with Triton's model-config protobuf,
and the ONNX graph is fed exactly what Triton's ONNX Runtime backend would feed it (the wheel's tritonserver has the
Python backend only). One tiny ONNX artifact and one server for the module; ports chosen free, loopback only, every
request loop bounded.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import runtime
from contract.profiles import PACKED_PROFILES
from export import BuildRequest, build
from runtime import InputError
from runtime.positions import grid_positions
from serving.artifacts import read_artifact
from serving.batching import run_requests
from serving.client import EncoderClient, packed_request
from serving.launcher import TritonServer
from serving.load import TOLERANCE, rel_l2, run_load, scrape, write_report
from serving.malformed import cases
from serving.model_config import ServeOptions, model_config
from serving.repository import write_repository
from tests.test_serving import fake, free_ports, parse

pytest.importorskip("pytriton", reason="nvidia-pytriton is installed by `make venv` (requirements-serving.txt)")
from tritonclient.grpc import model_config_pb2

PROFILE = PACKED_PROFILES["packed-test-small"]  # items 1..8 a call, up to 1,024 tokens; T 1..4, H and W 14..112
# A generous queue delay: a burst of requests sent together lands in one batch even on a loaded 2-core machine.
OPTIONS = ServeOptions(max_queue_delay_us=50_000)
MIXED = [(1, 14, 28), (2, 28, 42), (1, 56, 56), (4, 28, 28), (1, 112, 112), (3, 14, 56), (1, 42, 70), (2, 56, 28)]
assert len(set(MIXED)) == len(MIXED)  # (T, H, W), all different
TOL = TOLERANCE["fp32"]
BatchInputKind = model_config_pb2.BatchInput.Kind
BatchOutputKind = model_config_pb2.BatchOutput.Kind


@pytest.fixture(scope="module")
def artifact(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packed-artifacts")
    request = BuildRequest(tiny_dir, "fp32", [PROFILE], out, options={"quiet": True})
    return build("onnx", request).path


@pytest.fixture(scope="module")
def runner(artifact: Path) -> runtime.Runner:
    return runtime.load(artifact)


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    folder = tmp_path_factory.mktemp("packed-repo")
    write_repository(read_artifact(artifact), folder, OPTIONS, python_backend=True)
    srv = TritonServer(folder, free_ports(), exit_timeout_s=20).start(timeout_s=120)
    yield srv
    assert srv.stop() == 0, srv.log_tail()
    srv.close()


def item(t: int, h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pv = torch.randn(1, 3, t, h, w, generator=torch.Generator().manual_seed(seed)).numpy()
    return pv, grid_positions(1, t, h // 14, w // 14).numpy()


def single(runner: runtime.Runner, pv: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The rule's reference: the item run alone."""
    return runner.run_packed([(pv, pos)])[0].numpy()


# -- configs (no server) ----------------------------------------------------------------------------------------


def test_packed_configs_parse_as_triton_model_configs(artifact: Path, tmp_path: Path) -> None:
    info = read_artifact(artifact)
    dtype = model_config_pb2.DataType

    # Python backend: today's inputs, one item a request, ragged (Triton batches different shapes); items a call.
    py = parse(model_config(info, OPTIONS, python_backend=True))
    assert py.backend == "python" and py.max_batch_size == PROFILE.call_items.max == 8
    assert [(i.name, dtype.Name(i.data_type), list(i.dims), i.allow_ragged_batch) for i in py.input] == [
        ("pixel_values", "TYPE_FP32", [3, -1, -1, -1], True),
        ("patch_positions", "TYPE_INT64", [-1, 3], True),
    ]
    assert [(o.name, list(o.dims)) for o in py.output] == [("last_hidden_state", [-1, 128])]
    assert list(py.dynamic_batching.preferred_batch_size) == [4, 8]  # the profile's items opt and max
    assert not py.batch_input and not py.batch_output

    # onnxruntime_onnx: the packed inputs, ragged (concatenated 1-D: the flat graph), cu_seqlens from Triton.
    onnx = parse(model_config(info, OPTIONS))
    assert onnx.platform == "onnxruntime_onnx" and onnx.max_batch_size == 8
    assert [(i.name, dtype.Name(i.data_type), list(i.dims), i.allow_ragged_batch) for i in onnx.input] == [
        ("pixel_patches", "TYPE_FP32", [-1, 3 * 14 * 14], True),
        ("patch_positions", "TYPE_INT64", [-1, 3], True),
    ]
    assert [(o.name, dtype.Name(o.data_type), list(o.dims)) for o in onnx.output] == [
        ("last_hidden_state", "TYPE_FP32", [-1, 128])
    ]
    (bi,) = onnx.batch_input
    assert bi.kind == BatchInputKind.Value("BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO")
    assert (list(bi.target_name), dtype.Name(bi.data_type), list(bi.source_input)) == (
        ["cu_seqlens"],
        "TYPE_INT32",
        ["patch_positions"],
    )
    (bo,) = onnx.batch_output
    assert bo.kind == BatchOutputKind.Value("BATCH_SCATTER_WITH_INPUT_SHAPE")
    assert (list(bo.target_name), list(bo.source_input)) == (["last_hidden_state"], ["patch_positions"])

    # What the ORT backend checks at load (onnxruntime_backend src/onnxruntime.cc ValidateInputs/Outputs): every
    # graph input is a config input or a batch input, a ragged one is [-1] in the graph, types agree.
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    graph = {i.name: i for i in session.get_inputs()}
    assert sorted(graph) == sorted([i.name for i in onnx.input] + list(bi.target_name))
    onnx_type = {"TYPE_FP32": "tensor(float)", "TYPE_INT64": "tensor(int64)", "TYPE_INT32": "tensor(int32)"}
    for i in onnx.input:
        assert len(graph[i.name].shape) == 1 and not isinstance(graph[i.name].shape[0], int), graph[i.name]
        assert graph[i.name].type == onnx_type[dtype.Name(i.data_type)]
    assert graph["cu_seqlens"].type == onnx_type[dtype.Name(bi.data_type)]
    assert session.get_outputs()[0].type == onnx_type[dtype.Name(onnx.output[0].data_type)]

    # tensorrt_plan (an engine built from the same flat graph): the same batch input/output, on a GPU.
    trt = parse(model_config(fake(info, kind="trt", device="cuda"), OPTIONS))
    assert trt.platform == "tensorrt_plan" and trt.max_batch_size == 8
    assert [(i.name, list(i.dims), i.allow_ragged_batch) for i in trt.input] == [
        (i.name, list(i.dims), True) for i in onnx.input
    ]
    assert trt.batch_input == onnx.batch_input and trt.batch_output == onnx.batch_output
    assert trt.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.Kind.Value("KIND_GPU")

    # A packed TorchScript takes rows (N, 588), which Triton's ragged batching cannot hand it: Python backend.
    rows = [
        {**i, "shape": ["tokens", 588] if i["name"] == "pixel_patches" else i["shape"]} for i in info.manifest.inputs
    ]
    ts = fake(info, kind="torchscript", inputs=rows)
    assert parse(model_config(ts, OPTIONS)).backend == "python"

    # The native repository: model.onnx and its manifest; the Python-backend one: model.py and the artifact.
    folder = write_repository(info, tmp_path / "native", OPTIONS)
    assert sorted(p.name for p in (folder / "1").iterdir()) == sorted(["model.onnx", f"{artifact.name}.json"])
    assert parse((folder / "config.pbtxt").read_text()) == onnx
    folder = write_repository(info, tmp_path / "python", OPTIONS, python_backend=True)
    assert parse((folder / "config.pbtxt").read_text()).backend == "python"
    with pytest.raises(Exception, match="outside the profile's items range"):
        model_config(info, dataclasses.replace(OPTIONS, preferred_batch_sizes=(9,)))


def ort_backend_inputs(config: Any, requests: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """What Triton's ONNX Runtime backend binds for a batch of `requests` under `config` (onnxruntime_backend
    src/onnxruntime.cc SetInputTensors; backend src/backend_input_collector.cc ProcessBatchInput): a ragged input is
    the 1-D concatenation of every request's elements, a batch input is computed from its source input."""
    feeds = {}
    for inp in config.input:
        arrays = [r[inp.name] for r in requests]
        feeds[inp.name] = (
            np.concatenate([a.reshape(-1) for a in arrays]) if inp.allow_ragged_batch else np.concatenate(arrays)
        )
    for bi in config.batch_input:
        assert bi.kind == BatchInputKind.Value("BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO")
        counts = [r[bi.source_input[0]].size for r in requests]
        kind = np.int32 if bi.data_type == model_config_pb2.DataType.Value("TYPE_INT32") else np.float32
        for name in bi.target_name:
            feeds[name] = np.cumsum([0, *counts]).astype(kind)
    return feeds


def scatter_outputs(
    config: Any, requests: list[dict[str, np.ndarray]], outputs: dict[str, np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """Each request's part of a batch output (backend src/backend_output_responder.cc ProcessBatchOutput,
    BATCH_SCATTER_WITH_INPUT_SHAPE): the output's config dims with the batch dim in front, each -1 taken from the
    request's source input at the same index, cut from the model's output in request order."""
    answers: list[dict[str, np.ndarray]] = [{} for _ in requests]
    for bo in config.batch_output:
        name = bo.target_name[0]
        template = [-1, *next(o for o in config.output if o.name == name).dims]
        flat, offset = outputs[name].reshape(-1), 0
        for answer, request in zip(answers, requests, strict=True):
            source = request[bo.source_input[0]].shape
            shape = [source[k] if d == -1 else d for k, d in enumerate(template)]
            size = math.prod(shape)
            answer[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        assert offset == flat.size  # the model answered exactly the batch's tokens
    return answers


def test_onnx_graph_fed_as_tritons_onnxruntime_backend_feeds_it(artifact: Path, runner: runtime.Runner) -> None:
    """The native config and the flat graph together: requests as a client sends them (serving.client.packed_request),
    batched by the config's ragged/batch-input rules, run through onnxruntime, scattered back by the batch output:
    each request's (1, L, hidden) equals that item run alone within the rule."""
    import onnxruntime as ort

    config = parse(model_config(read_artifact(artifact), OPTIONS))
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    items = [item(*shape, seed=i) for i, shape in enumerate(MIXED)]
    width = list(config.input[0].dims)[-1]
    for batch in (items[:1], items[:3], items[3:], items):  # 1, 3, 5 and all 8 (the max batch) requests
        requests = [packed_request(pv, pos, width) for pv, pos in batch]
        feeds = ort_backend_inputs(config, requests)
        assert feeds["cu_seqlens"].dtype == np.int32 and feeds["cu_seqlens"][-1] == feeds["patch_positions"].size
        (out,) = session.run(["last_hidden_state"], feeds)
        answers = scatter_outputs(config, requests, {"last_hidden_state": out})
        for (pv, pos), answer in zip(batch, answers, strict=True):
            got, ref = answer["last_hidden_state"], single(runner, pv, pos)
            assert got.shape == ref.shape == (1, pos.shape[1], 128)
            assert rel_l2(got, ref) <= TOL, (pv.shape, rel_l2(got, ref))


def test_native_batch_with_a_nan_request_keeps_its_neighbours(artifact: Path, runner: runtime.Runner) -> None:
    """Natively Triton checks dtypes and shapes only, so a NaN request reaches the flat graph beside others: its NaN
    stays in its own answer and never reaches theirs (mask attention zeroes non-finite keys and values of the other
    items: models/packing.py; before, 0 x NaN turned the whole batch into NaN)."""
    import onnxruntime as ort

    config = parse(model_config(read_artifact(artifact), OPTIONS))
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    batch = [item(*shape, seed=30 + i) for i, shape in enumerate(MIXED[:3])]
    nan = batch[1][0].copy()
    nan[0, 0, 0, 0, 0] = np.nan
    requests = [packed_request(pv, pos, 588) for pv, pos in [batch[0], (nan, batch[1][1]), batch[2]]]
    (out,) = session.run(["last_hidden_state"], ort_backend_inputs(config, requests))
    answers = scatter_outputs(config, requests, {"last_hidden_state": out})
    for k in (0, 2):
        assert rel_l2(answers[k]["last_hidden_state"], single(runner, *batch[k])) <= TOL
    assert np.isnan(answers[1]["last_hidden_state"]).any()  # the bad request's own answer is not silently finite


def test_packed_execute_refuses_malformed_requests_alone(runner: runtime.Runner) -> None:
    """One execute() of mixed valid and malformed requests: each malformed one refused by its own message, the valid
    ones packed together and answered as if alone."""
    valid = [item(*shape, seed=10 + i) for i, shape in enumerate(MIXED[:4])]
    nan = valid[1][0].copy()
    nan[0, 0, 0, 0, 0] = np.nan
    two = (np.concatenate([valid[0][0]] * 2), np.concatenate([valid[0][1]] * 2))
    requests = [valid[0], (nan, valid[1][1]), valid[1], two, valid[2], (valid[3][0], valid[3][1][:, :-1]), valid[3]]
    results = run_requests(runner, requests)
    assert isinstance(results[1], InputError) and "1 NaN" in str(results[1])
    assert isinstance(results[3], InputError) and "an item is one sample (batch 1)" in str(results[3])
    assert isinstance(results[5], InputError) and "expected L =" in str(results[5])
    assert not str(results[1]).startswith("item ")  # the request's own message, not the packed call's item index
    for k, (pv, pos) in zip((0, 2, 4, 6), valid, strict=True):
        got = results[k]
        assert isinstance(got, np.ndarray) and rel_l2(got, single(runner, pv, pos)) <= TOL


# -- served (one server) ----------------------------------------------------------------------------------------


def burst(url: str, requests: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray | Exception]:
    """Every request from its own client thread (tritonclient's HTTP clients belong to the thread that made them),
    released together once every client is connected and has read the model metadata."""
    gate = threading.Barrier(len(requests))
    answers: list[np.ndarray | Exception] = [RuntimeError("not answered")] * len(requests)

    def call(k: int) -> None:
        client = EncoderClient(url, "http", timeout_s=60)
        try:
            client.input_types()
            gate.wait(timeout=30)
            answers[k] = client.infer(*requests[k])
        except Exception as exc:
            answers[k] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=call, args=(k,), daemon=True) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return answers


def test_served_different_shapes_execute_together(server: TritonServer, runner: runtime.Runner) -> None:
    """8 requests of 8 different shapes sent together: each answer equals the item alone, and Triton executed them in
    fewer model executions than requests, so some execution held requests of different shapes. Then a burst with
    malformed requests among valid ones: each malformed one refused alone, by name."""
    metrics = f"http://127.0.0.1:{server.ports.metrics}/metrics"
    items = [item(*shape, seed=20 + i) for i, shape in enumerate(MIXED)]
    before = scrape(metrics)
    answers = burst(server.url, items)
    after = scrape(metrics)
    for (pv, pos), got in zip(items, answers, strict=True):
        assert isinstance(got, np.ndarray), got
        assert got.shape == (1, pos.shape[1], 128) and rel_l2(got, single(runner, pv, pos)) <= TOL
    count, executions = (after[k] - before[k] for k in ("samples", "executions"))
    assert count == len(MIXED) and executions < count, (count, executions)  # nv_inference_count > exec_count

    bad = {c.name: c for c in cases(PROFILE.height.max, packed=True)}
    probe = EncoderClient(server.url, "http")
    types = probe.input_types()
    probe.close()
    malformed = [bad[n].make(*items[k], types, 1) for k, n in ((0, "NaN pixel"), (2, "L mismatch"))]
    sent: list[tuple[np.ndarray, np.ndarray]] = [items[1], malformed[0][:2], items[3], malformed[1][:2], items[5]]
    answers = burst(server.url, sent)
    for k in (0, 2, 4):
        got = answers[k]
        assert isinstance(got, np.ndarray) and rel_l2(got, single(runner, *sent[k])) <= TOL, got
    assert bad["NaN pixel"].matches(str(answers[1])) and bad["L mismatch"].matches(str(answers[3])), answers
    assert server.ready()


def test_served_load_8_clients_mixed_shapes(server: TritonServer, artifact: Path, tmp_path: Path) -> None:
    """The load generator: 8 clients x 10 requests of mixed shapes (every 5th malformed, each kind once at least),
    every valid answer within the rule of `run_packed([item])` alone, and the batching ratio above 1."""
    report = run_load(
        server.url,
        artifact,
        clients=8,
        requests=10,
        malformed_every=5,
        timeout_s=120,
        shapes=[(1, *shape) for shape in MIXED],
        metrics_url=f"http://127.0.0.1:{server.ports.metrics}/metrics",
    )
    write_report(report, tmp_path)
    print("\n" + report.table())
    problems = [
        (s.case, s.status, s.detail) for s in report.samples if s.status not in ("correct", "refused as expected")
    ]
    assert not problems, problems[:5]
    assert report.not_sent == 0 and report.counts["correct"] == 64 and report.counts["refused as expected"] == 16
    assert {s.case for s in report.samples if s.status == "refused as expected"} == {
        c.name for c in cases(PROFILE.height.max, packed=True)
    }
    assert report.server["samples"] >= 64 and report.server["executions"] < report.server["samples"], report.server
