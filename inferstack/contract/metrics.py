"""Prometheus metric names exported by the runtime.

Two sides depend on them: the runtime exports them, and the components write PromQL against them
for the KEDA triggers (and the policies recognise demand triggers by them). Nothing else may
spell these strings.
"""

from typing import Final

NAMESPACE: Final = "inferstack"

# Gauges.
QUEUE_DEPTH: Final = f"{NAMESPACE}_queue_depth"
"""Requests admitted and waiting for a batch slot (not yet on the model)."""
IN_FLIGHT: Final = f"{NAMESPACE}_inflight_requests"
"""Requests admitted and not yet answered: waiting plus computing."""
BUSY_INSTANCES: Final = f"{NAMESPACE}_busy_model_instances"
"""Model instances currently running a batch."""
OPEN_CONNECTIONS: Final = f"{NAMESPACE}_http_open_connections"
"""Client connections the HTTP layer holds open (counted against its connection cap)."""

# Counters (exposed with the `_total` suffix by the Prometheus client).
REQUESTS: Final = f"{NAMESPACE}_requests"
"""Requests by `model` and `outcome` (one of REQUEST_OUTCOMES)."""
REQUEST_OUTCOMES: Final = ("success", "invalid", "shed", "timeout", "failed", "cancelled")
"""`outcome` values of REQUESTS: answered 200; refused for the request itself (a 4xx: a body
that does not decode, too many rows, an input the model rejects alone); refused for capacity
with Retry-After (429 for a full queue, 503 while draining or past the body budget); timed out
in the queue (503); failed in the server or the model (5xx: a dead model process, out of
memory, outputs that do not match the batch); the client went away first."""
HTTP_REFUSALS: Final = f"{NAMESPACE}_http_refusals"
"""Connections or requests the HTTP layer refused itself, by `reason` (one of HTTP_REASONS)."""
REFUSED_CONNECTION_CAP: Final = "connection_cap"
REFUSED_EVICTED: Final = "evicted"
REFUSED_HEADER_TIMEOUT: Final = "header_timeout"
REFUSED_BODY_RATE: Final = "body_rate"
REFUSED_MALFORMED: Final = "malformed"
HTTP_REASONS: Final = (
    REFUSED_CONNECTION_CAP,
    REFUSED_EVICTED,
    REFUSED_HEADER_TIMEOUT,
    REFUSED_BODY_RATE,
    REFUSED_MALFORMED,
)
"""`reason` values of HTTP_REFUSALS: a new connection past the cap with nobody to evict (503);
a connection closed to make room (408 when mid-head); a request head or body that arrived too
slowly (408); bytes that are not an HTTP/1.1 request (400)."""

# Histograms.
BATCH_SIZE: Final = f"{NAMESPACE}_batch_size"
QUEUE_WAIT_SECONDS: Final = f"{NAMESPACE}_queue_wait_seconds"
COMPUTE_SECONDS: Final = f"{NAMESPACE}_compute_seconds"
REQUEST_SECONDS: Final = f"{NAMESPACE}_request_seconds"

# Async worker.
WORKER_BACKLOG: Final = f"{NAMESPACE}_worker_backlog_messages"
WORKER_IN_FLIGHT: Final = f"{NAMESPACE}_worker_inflight_messages"
WORKER_MESSAGES: Final = f"{NAMESPACE}_worker_messages"
"""Worker messages by `outcome` (one of WORKER_OUTCOMES)."""
WORKER_OUTCOMES: Final = ("processed", "duplicate", "retried", "released", "dead_lettered")
"""`outcome` values of WORKER_MESSAGES: result written; redelivered with its result already
written (acked without the model); failed and retried later; handed back on a drain; moved to
the dead-letter queue."""

# Labels every series carries.
MODEL_LABEL: Final = "model"
OUTCOME_LABEL: Final = "outcome"
REASON_LABEL: Final = "reason"
