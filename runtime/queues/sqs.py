"""Amazon SQS consumer.

URI: `sqs://<queue url>` or `sqs://<queue name>` (resolved with GetQueueUrl). Region, credentials
and endpoint come from the standard AWS chain (`AWS_REGION`, IRSA, `AWS_ENDPOINT_URL_SQS` for an
SQS-compatible server).

The queue must have a redrive policy: its dead-letter queue is where poison messages go and its
`maxReceiveCount` is the number of attempts. Without one a poison message would cycle forever,
so opening such a queue fails with the fix. The worker dead-letters a message itself on its last
attempt (SendMessage to the DLQ with the reason, then DeleteMessage), so the DLQ entry says why;
should the worker die between the two calls, SQS's own redrive still moves it on the next
receive. A crash between them can leave two DLQ copies, which carry the original id in the
`inferstack-message-id` attribute.

A message body is the v2 request JSON; a binary-extension body is sent base64 in the body with
the `inference-header-content-length` attribute, since SQS bodies are text.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

import boto3
from typing_extensions import override

from inferstack.runtime.queues import Message, QueueConfigError, QueueConsumer, byte_count
from inferstack.runtime.redaction import redact_uri

MAX_BATCH: Final = 10
"""SQS caps ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch at 10."""
MAX_WAIT_S: Final = 20
MAX_VISIBILITY_S: Final = 43_200
HEADER_LENGTH_ATTRIBUTE: Final = "inference-header-content-length"
MESSAGE_ID_ATTRIBUTE: Final = "inferstack-message-id"
REASON_ATTRIBUTE: Final = "inferstack-dead-letter-reason"


class SqsQueue(QueueConsumer):
    """An SQS queue with a redrive policy (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        *,
        uri: str,
        queue_url: str,
        lease_s: float = 60.0,
        max_attempts: int | None = None,
    ) -> None:
        self.uri = redact_uri(uri)
        self.lease_s = lease_s
        self.queue_url = queue_url
        self._client = client
        attributes = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy", "QueueArn"]
        )["Attributes"]
        raw_policy = attributes.get("RedrivePolicy")
        if not raw_policy:
            raise QueueConfigError(
                f"SQS queue {redact_uri(queue_url)} has no redrive policy, so a poison message "
                "would be retried forever; give it a dead-letter queue: RedrivePolicy "
                '{"deadLetterTargetArn": "<dlq arn>", "maxReceiveCount": 5}'
            )
        policy = json.loads(raw_policy)
        self.max_attempts = max_attempts or int(policy["maxReceiveCount"])
        arn = str(policy["deadLetterTargetArn"])
        # arn:aws:sqs:<region>:<account>:<name>
        _, _, _, _, account, dlq_name = arn.split(":", 5)
        self.dead_letter_url = client.get_queue_url(
            QueueName=dlq_name, QueueOwnerAWSAccountId=account
        )["QueueUrl"]

    @classmethod
    def from_uri(
        cls, uri: str, *, lease_s: float = 60.0, max_attempts: int | None = None
    ) -> SqsQueue:
        """Resolve `sqs://<url or name>` with the default AWS client chain."""
        target = uri.removeprefix("sqs://")
        if not target:
            raise QueueConfigError(
                f"queue URI {redact_uri(uri)!r} names no queue; use sqs://<url or name>"
            )
        client = boto3.client("sqs")
        if target.startswith(("https://", "http://")):
            queue_url = target
        else:
            try:
                queue_url = client.get_queue_url(QueueName=target)["QueueUrl"]
            except client.exceptions.QueueDoesNotExist:
                raise QueueConfigError(
                    f"SQS queue {target!r} does not exist in this account and region; check "
                    "the name, AWS_REGION and AWS_ENDPOINT_URL_SQS"
                ) from None
        return cls(client, uri=uri, queue_url=queue_url, lease_s=lease_s, max_attempts=max_attempts)

    @property
    def _visibility(self) -> int:
        return max(1, min(MAX_VISIBILITY_S, round(self.lease_s)))

    @override
    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        messages: list[Message] = []
        wait = max(0, min(MAX_WAIT_S, round(wait_s)))
        while len(messages) < max_messages:
            count = min(MAX_BATCH, max_messages - len(messages))
            reply = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait if not messages else 0,
                VisibilityTimeout=self._visibility,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=[HEADER_LENGTH_ATTRIBUTE],
            )
            batch = [self._message(raw) for raw in reply.get("Messages", [])]
            messages.extend(batch)
            if len(batch) < count:
                break  # The queue has no more visible right now.
        return messages

    def _message(self, raw: dict[str, Any]) -> Message:
        attribute = raw.get("MessageAttributes", {}).get(HEADER_LENGTH_ATTRIBUTE)
        body_text: str = raw.get("Body", "")
        body, header_length, problem = body_text.encode(), None, None
        # Never raise here: a receive that fails hands back every message it received.
        if attribute:
            value = attribute.get("StringValue")
            header_length = byte_count(value)
            if header_length is None:
                problem = f"attribute {HEADER_LENGTH_ATTRIBUTE} must be a byte count, got {value!r}"
            else:
                try:
                    body = base64.b64decode(body_text, validate=True)
                except (binascii.Error, ValueError):
                    problem = (
                        f"with attribute {HEADER_LENGTH_ATTRIBUTE} the body must be the base64 "
                        "of the JSON header and the tensor bytes, and it is not valid base64"
                    )
                    header_length = None
        return Message(
            id=raw["MessageId"],
            body=body,
            attempt=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            handle=raw["ReceiptHandle"],
            header_length=header_length,
            problem=problem,
        )

    @override
    def ack(self, messages: Sequence[Message]) -> None:
        for chunk in _chunks(messages):
            reply = self._client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(chunk)],
            )
            _raise_failed(reply, "DeleteMessageBatch")

    @override
    def extend(self, messages: Sequence[Message]) -> None:
        self._visibility_batch(messages, self._visibility)

    @override
    def retry_later(self, message: Message, delay_s: float) -> None:
        self._client.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=message.handle,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_S, round(delay_s))),
        )

    @override
    def release(self, messages: Sequence[Message]) -> None:
        self._visibility_batch(messages, 0)

    def _visibility_batch(self, messages: Sequence[Message], seconds: int) -> None:
        for chunk in _chunks(messages):
            reply = self._client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": seconds}
                    for i, m in enumerate(chunk)
                ],
            )
            _raise_failed(reply, "ChangeMessageVisibilityBatch")

    @override
    def dead_letter(self, message: Message, reason: str) -> None:
        attributes: dict[str, Any] = {
            MESSAGE_ID_ATTRIBUTE: {"DataType": "String", "StringValue": message.id},
            # SQS attribute values are capped at 256 KiB; a reason is a line of text.
            REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:4096] or "-"},
        }
        if message.header_length is not None:
            body = base64.b64encode(message.body).decode()
            attributes[HEADER_LENGTH_ATTRIBUTE] = {
                "DataType": "Number",
                "StringValue": str(message.header_length),
            }
        else:
            body = message.body.decode(errors="replace")
        self._client.send_message(
            QueueUrl=self.dead_letter_url, MessageBody=body or "-", MessageAttributes=attributes
        )
        self._client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.handle)

    @override
    def backlog(self) -> int | None:
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


def _chunks(messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
    for start in range(0, len(messages), MAX_BATCH):
        yield messages[start : start + MAX_BATCH]


def _raise_failed(reply: dict[str, Any], call: str) -> None:
    failed = reply.get("Failed") or []
    # A receipt handle that expired means another consumer got the message: not our error to
    # raise, at-least-once already covers it.
    hard = [f for f in failed if f.get("Code") != "ReceiptHandleIsInvalid"]
    if hard:
        raise RuntimeError(f"SQS {call} failed for {len(hard)} entries: {hard[:3]}")
