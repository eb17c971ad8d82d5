"""The one redaction rule for URIs, text and log lines (`inferstack.runtime.redaction`)."""

from __future__ import annotations

import logging

import pytest

from inferstack.runtime.queues import QueueConfigError, open_queue
from inferstack.runtime.redaction import RedactingFormatter, redact_text, redact_uri
from inferstack.runtime.results import ResultStoreConfigError, open_result_store

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("redis://:hunter2-s3cret@127.0.0.1:6379/0?stream=s", "redis://:***@127.0.0.1:6379/0?stream=s"),
        ("rediss://worker:hunter2-s3cret@cache:6380/1", "rediss://worker:***@cache:6380/1"),
        ("redis://:p@ss-hunter2-s3cret@cache/0", "redis://:***@cache/0"),
        (
            "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=hunter2-s3cret&part=1",
            "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&part=1",
        ),
        ("redis://cache/0?stream=s&password=hunter2-s3cret#f", "redis://cache/0?stream=s&password=***#f"),
        ("sqs://https://u:hunter2-s3cret@sqs.local/1/q?token=hunter2-s3cret", "sqs://https://u:***@sqs.local/1/q?token=***"),
        ("redis://user@cache:6379/0?stream=s", "redis://user@cache:6379/0?stream=s"),
        ("file:///srv/results", "file:///srv/results"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("not a uri", "not a uri"),
    ],
)  # fmt: skip
def test_a_uri_keeps_everything_but_its_credentials(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_every_uri_in_text_is_redacted() -> None:
    text = (
        f"receive from redis://:{SECRET}@h:1/0?stream=s failed: "
        f"'redis://u:{SECRET}@h:2/0' (see https://docs?token={SECRET})"
    )
    assert redact_text(text) == (
        "receive from redis://:***@h:1/0?stream=s failed: "
        "'redis://u:***@h:2/0' (see https://docs?token=***)"
    )


def test_the_formatter_redacts_the_message_and_the_traceback() -> None:
    formatter = RedactingFormatter(logging.Formatter("%(levelname)s %(message)s"))
    try:
        raise ConnectionError(f"cannot reach redis://:{SECRET}@h/0")
    except ConnectionError as error:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "store %s: %s", (f"redis://:{SECRET}@h/0", error),
            (type(error), error, error.__traceback__),
        )  # fmt: skip
    line = formatter.format(record)
    assert SECRET not in line
    assert line.startswith("ERROR store redis://:***@h/0: cannot reach redis://:***@h/0")
    assert "Traceback" in line


@pytest.mark.parametrize(
    "uri",
    [
        f"redis://:{SECRET}@127.0.0.1:1/0",  # No stream.
        f"redis://:{SECRET}@127.0.0.1:1/0?stream=s&bogus=1",
        f"redis://:{SECRET}@127.0.0.1:1/0?stream=s&max_attempts=x",
        f"amqp://:{SECRET}@127.0.0.1/",
    ],
)
def test_a_refused_queue_uri_is_quoted_without_its_password(uri: str) -> None:
    with pytest.raises(QueueConfigError) as refused:
        open_queue(uri)
    assert SECRET not in str(refused.value)
    assert ":***@127.0.0.1" in str(refused.value)


@pytest.mark.parametrize(
    "uri", [f"redis://:{SECRET}@127.0.0.1:1/0?bogus=1", f"amqp://:{SECRET}@127.0.0.1/"]
)
def test_a_refused_results_uri_is_quoted_without_its_password(uri: str) -> None:
    with pytest.raises(ResultStoreConfigError) as refused:
        open_result_store(uri)
    assert SECRET not in str(refused.value)
    assert ":***@127.0.0.1" in str(refused.value)


def test_an_opened_store_and_queue_show_their_uri_redacted() -> None:
    store = open_result_store(f"redis://:{SECRET}@127.0.0.1:1/0")
    assert store.uri == "redis://:***@127.0.0.1:1/0"
    store.close()
