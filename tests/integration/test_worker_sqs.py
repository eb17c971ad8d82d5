"""SQS and S3 against moto in server mode (a separate process speaking the AWS wire protocols)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.runtime.models import load_model
from inferstack.runtime.queues import QueueConfigError, open_queue
from inferstack.runtime.queues.sqs import (
    HEADER_LENGTH_ATTRIBUTE,
    MESSAGE_ID_ATTRIBUTE,
    REASON_ATTRIBUTE,
)
from inferstack.runtime.results import open_result_store
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.settings import WorkerSettings
from tests.integration.conftest import AwsServer, unique
from tests.v2_client import encode_request

pytestmark = pytest.mark.integration


def make_queue(aws: AwsServer, *, max_receive: int = 3) -> tuple[str, str]:
    """A work queue with a redrive policy to a fresh DLQ: (queue url, dlq url)."""
    sqs = aws.client("sqs")
    name = unique("work")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dead")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return url, dlq_url


def row(index: int) -> np.ndarray:
    return ((np.arange(512) * (index + 3)) % 13).astype(np.float32)[None] / 8


def drain(aws: AwsServer, url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        )
        if not reply.get("Messages"):
            return found
        found.extend(reply["Messages"])


def test_queue_without_redrive_policy_is_refused(aws_env: AwsServer) -> None:
    aws_env.client("sqs").create_queue(QueueName="no-dlq")
    with pytest.raises(QueueConfigError, match="no redrive policy"):
        open_queue("sqs://no-dlq")


def test_unknown_queue_name_is_a_clear_error(aws_env: AwsServer) -> None:
    with pytest.raises(QueueConfigError, match="does not exist"):
        open_queue("sqs://never-created")


def test_receive_release_extend_and_dead_letter(aws_env: AwsServer) -> None:
    url, dlq_url = make_queue(aws_env, max_receive=4)
    sqs = aws_env.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="one")
    queue = open_queue(f"sqs://{url}", lease_s=300)
    assert queue.max_attempts == 4
    assert queue.backlog() == 1
    [message] = queue.receive(10, wait_s=1)
    assert (message.body, message.attempt) == (b"one", 1)
    assert queue.receive(10, wait_s=0) == []  # Leased for five minutes.
    queue.extend([message])
    assert queue.receive(10, wait_s=0) == []
    queue.release([message])
    [again] = queue.receive(10, wait_s=1)  # Visible at once, and the count went up.
    assert (again.id, again.attempt) == (message.id, 2)
    queue.dead_letter(again, "invalid v2 request: not JSON")
    assert drain(aws_env, url) == []
    [dead] = drain(aws_env, dlq_url)
    assert dead["Body"] == "one"
    attributes = dead["MessageAttributes"]
    assert attributes[MESSAGE_ID_ATTRIBUTE]["StringValue"] == message.id
    assert attributes[REASON_ATTRIBUTE]["StringValue"] == "invalid v2 request: not JSON"


def test_receive_takes_more_than_ten_in_several_calls(aws_env: AwsServer) -> None:
    url, _ = make_queue(aws_env)
    sqs = aws_env.client("sqs")
    for start in range(0, 25, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(start + 10, 25))
            ],
        )
    queue = open_queue(f"sqs://{url}")
    messages = queue.receive(25, wait_s=1)
    assert sorted(m.body for m in messages) == sorted(f"m{i}".encode() for i in range(25))
    queue.ack(messages)
    assert queue.backlog() == 0


def test_worker_end_to_end_on_sqs(aws_env: AwsServer, tmp_path: Path) -> None:
    url, dlq_url = make_queue(aws_env)
    sqs = aws_env.client("sqs")
    sent: dict[str, int] = {}
    for index in range(40):
        reply = sqs.send_message(
            QueueUrl=url,
            MessageBody=encode_request({"input": row(index)}, request_id=f"r{index}").body.decode(),
        )
        sent[reply["MessageId"]] = index
    # A binary-extension body travels base64 with its header length as an attribute.
    binary = encode_request({"input": row(99)}, binary=True)
    assert binary.header_length is not None
    reply = sqs.send_message(
        QueueUrl=url,
        MessageBody=base64.b64encode(binary.body).decode(),
        MessageAttributes={
            HEADER_LENGTH_ATTRIBUTE: {
                "DataType": "Number",
                "StringValue": str(binary.header_length),
            }
        },
    )
    sent[reply["MessageId"]] = 99
    poison = sqs.send_message(QueueUrl=url, MessageBody='{"inputs": "nope"}')["MessageId"]

    model = load_model("builtin://mlp", device="cpu")
    settings = WorkerSettings(
        queue=f"sqs://{url}",
        model="builtin://mlp",
        max_batch_size=16,
        poll_wait_s=0,
        exit_when_idle_s=0.5,
        metrics_port=0,
    )
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(open_queue(settings.queue), store, model, settings)
    asyncio.run(worker.run())

    assert worker.counts()["processed"] == len(sent)
    for message_id, index in sent.items():
        document = json.loads(store.get(message_id) or b"{}")
        assert document["message_id"] == message_id
        expected = model.predict_batch({"input": row(index)})["output"].ravel()
        np.testing.assert_allclose(document["outputs"][0]["data"], expected, rtol=1e-4, atol=1e-5)
    assert drain(aws_env, url) == []
    [dead] = drain(aws_env, dlq_url)
    assert dead["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"] == poison
    assert (
        "'inputs' must be a non-empty list"
        in dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    )


def test_s3_results_are_write_once(aws_env: AwsServer) -> None:
    bucket = unique("results")
    aws_env.client("s3").create_bucket(Bucket=bucket)
    store = open_result_store(f"s3://{bucket}/run-1")
    assert store.put_many({"a": b'{"x": 1}', "b": b'{"x": 2}'}) == {"a": True, "b": True}
    assert store.put_many({"a": b'{"x": 3}'}) == {"a": False}
    assert store.get("a") == b'{"x": 1}'
    assert store.get("missing") is None
    assert store.existing(["a", "b", "c"]) == {"a", "b"}
    keys = [o["Key"] for o in aws_env.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["run-1/a.json", "run-1/b.json"]


def test_inferstack_work_on_sqs_into_s3(aws_env: AwsServer) -> None:
    url, _ = make_queue(aws_env)
    name = url.rsplit("/", 1)[1]
    bucket = unique("out")
    aws_env.client("s3").create_bucket(Bucket=bucket)
    sqs = aws_env.client("sqs")
    ids = [
        sqs.send_message(QueueUrl=url, MessageBody=encode_request({"input": row(i)}).body.decode())[
            "MessageId"
        ]
        for i in range(10)
    ]
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferstack.cli",
            "work",
            "--queue",
            f"sqs://{name}",
            "--model",
            "builtin://mlp",
            "--results",
            f"s3://{bucket}/out",
            "--metrics-port",
            "0",
            "--interruption",
            "off",
            "--torch-threads",
            "1",
            "--poll-wait-s",
            "0",
            "--exit-when-idle-s",
            "1",
        ],  # fmt: skip
        capture_output=True,
        timeout=300,
        env={**os.environ, **aws_env.environment},
    )
    assert process.returncode == 0, process.stderr.decode()
    keys = [o["Key"] for o in aws_env.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted(f"out/{i}.json" for i in ids)
