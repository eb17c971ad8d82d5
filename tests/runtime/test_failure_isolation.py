"""One bad row fails alone: `inferstack serve` with a TorchScript embedding model, over HTTP.

A token id outside the embedding's vocabulary makes the model raise inside the TorchScript
interpreter, with a message that carries the model's source and file paths. Sent among 31 good
requests at once (so that they share batches), it used to fail its batch-mates with 500 and the
whole traceback. Now exactly one request fails, with 422 naming its input and no traceback, the
server logs it once with its request id, and the metrics count it `invalid`.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.runtime import embedding_model
from tests.runtime.serving import Server, start_server, stop_server

pytestmark = pytest.mark.integration

CONCURRENT = 32
RUNS = 10
BAD_ROW = 13


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return embedding_model.build(tmp_path_factory.mktemp("embedding") / "embedder.pt")


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    # A queue delay long enough that 32 requests sent at once share batches.
    server = start_server(
        "--model", str(model_path), "--max-batch-size", "32", "--max-queue-delay-ms", "50"
    )
    yield server
    stop_server(server)


def _send_at_once(server: Server, bodies: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """POST every body from its own connection, all released together."""
    path = "/v2/models/embedder/infer"
    start = threading.Barrier(len(bodies))
    answers: list[tuple[int, dict[str, str], bytes] | None] = [None] * len(bodies)

    def post(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.connect()
        start.wait(30)
        connection.request("POST", path, bodies[index], {"content-type": "application/json"})
        response = connection.getresponse()
        answers[index] = (response.status, dict(response.getheaders()), response.read())
        connection.close()

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(answer is not None for answer in answers), "a request got no answer"
    return [answer for answer in answers if answer is not None]


def _metrics(server: Server) -> dict[str, float]:
    """Requests by outcome, plus `batches` (model calls) and `single_row_batches`."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        value = float(line.split()[-1]) if not line.startswith("#") else 0.0
        if line.startswith("inferstack_requests_total{"):
            values[line.split('outcome="')[1].split('"')[0]] = value
        elif line.startswith("inferstack_batch_size_count"):
            values["batches"] = value
        elif line.startswith("inferstack_batch_size_bucket") and 'le="1.0"' in line:
            values["single_row_batches"] = value
    return values


def test_one_out_of_range_row_among_32_concurrent_requests_fails_alone_in_10_runs_of_10(
    server: Server, model_path: Path
) -> None:
    expected = embedding_model.expected(
        model_path, [embedding_model.tokens(row) for row in range(CONCURRENT)]
    )
    for run in range(RUNS):
        bodies = [
            embedding_model.request(
                [1, 2, embedding_model.OUT_OF_RANGE, 3]
                if row == BAD_ROW
                else embedding_model.tokens(row),
                f"run{run}-row{row}",
            )
            for row in range(CONCURRENT)
        ]
        answers = _send_at_once(server, bodies)
        statuses = [status for status, _, _ in answers]
        assert statuses.count(200) == CONCURRENT - 1, (run, statuses)
        status, headers, payload = answers[BAD_ROW]
        assert status == 422, (run, payload)
        error = json.loads(payload)["error"]
        assert error.startswith(
            "model 'embedder' rejected this request's input 'tokens' (its row): "
            "RuntimeError: index out of range in self"
        ), error
        for leak in ("Traceback", "File ", ".py", str(model_path.parent), "<--- HERE"):
            assert leak not in error, (leak, error)
        assert headers["x-request-id"] == f"run{run}-row{BAD_ROW}"
        for row, (_, _, payload) in enumerate(answers):
            if row != BAD_ROW:
                (output,) = json.loads(payload)["outputs"]
                np.testing.assert_allclose(
                    np.asarray(output["data"], np.float32).reshape(1, -1),
                    expected[row : row + 1],
                    rtol=1e-6,
                )

    counts = _metrics(server)
    assert counts["invalid"] == RUNS
    assert counts["success"] == RUNS * (CONCURRENT - 1)
    assert counts["failed"] == 0
    # The requests did share batches: fewer batches of one row than model calls in all.
    assert counts["single_row_batches"] < counts["batches"]

    stop_server(server)
    log = server.process.stderr.read().decode() if server.process.stderr else ""
    failures = [line for line in log.splitlines() if "inference failed" in line]
    assert len(failures) == RUNS, log[-3000:]
    for run, line in enumerate(failures):
        assert f'request_id="run{run}-row{BAD_ROW}" status=422' in line, line
    assert "Traceback" not in log
