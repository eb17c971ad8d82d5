"""Spot interruption notices from the cloud metadata services, polled on a thread.

- AWS (IMDSv2): a session token from `PUT /latest/api/token`, then
  `GET /latest/meta-data/spot/instance-action` (404 until EC2 schedules the stop, then
  `{"action": "terminate", "time": "<UTC>"}`, two minutes ahead) and
  `GET /latest/meta-data/events/recommendations/rebalance` (404, then `{"noticeTime": ...}`: the
  instance is at elevated risk; no deadline is given, so `rebalance_drain_s` stands in).
- GCP: `GET /computeMetadata/v1/instance/preempted` with `Metadata-Flavor: Google` answers
  `TRUE` once the VM is being preempted; the VM stops about 30 s later (`gcp_notice_s`).

SIGTERM (Kubernetes evicting the pod, the node draining) is the other notice; `process.py` turns
it into a `Notice` whose deadline is the pod's grace period.

The watcher is off unless a metadata base URL is configured or the process runs on that cloud
(read from the DMI vendor strings, which costs no network call), so tests and laptops never
touch 169.254.169.254 or metadata.google.internal.

A `Notice` carries a monotonic deadline; the worker decides what to finish before it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from inferstack.contract.clouds import INTERRUPTION_NOTICE_SECONDS

logger = logging.getLogger(__name__)

AWS_DEFAULT_URL: Final = "http://169.254.169.254"
GCP_DEFAULT_URL: Final = "http://metadata.google.internal"
AWS_URL_ENV: Final = "INFERSTACK_AWS_METADATA_URL"
GCP_URL_ENV: Final = "INFERSTACK_GCP_METADATA_URL"

AWS_TOKEN_PATH: Final = "/latest/api/token"
AWS_SPOT_PATH: Final = "/latest/meta-data/spot/instance-action"
AWS_REBALANCE_PATH: Final = "/latest/meta-data/events/recommendations/rebalance"
GCP_PREEMPTED_PATH: Final = "/computeMetadata/v1/instance/preempted"
AWS_TOKEN_TTL_S: Final = 21_600

AWS_NOTICE_S: Final = float(INTERRUPTION_NOTICE_SECONDS["aws"])
"""EC2 gives two minutes between the spot instance-action notice and the stop."""
GCP_NOTICE_S: Final = float(INTERRUPTION_NOTICE_SECONDS["gcp"])
"""GCE gives about 30 s between the preemption notice and the stop."""

DMI_DIR: Final = Path("/sys/class/dmi/id")


@dataclass(frozen=True)
class Notice:
    """An interruption is coming: where from, and by when (on the `time.monotonic` clock)."""

    source: str
    """`aws-spot`, `aws-rebalance` or `gcp-preempted` (the metadata services), `sigterm` or
    `sigint` (the process's signals), `model-exit` (the worker's model process died), or `stop`
    (`Worker.stop`)."""
    deadline: float
    detail: str = ""


@dataclass(frozen=True)
class MetadataEndpoints:
    """The metadata base URLs to poll; None disables that cloud."""

    aws: str | None = None
    gcp: str | None = None

    @property
    def enabled(self) -> bool:
        """True when at least one cloud is watched."""
        return self.aws is not None or self.gcp is not None


def detect_cloud(dmi_dir: Path = DMI_DIR) -> str | None:
    """`aws`, `gcp` or None, from the DMI vendor strings the hypervisor exposes (no network)."""
    values = []
    for name in ("sys_vendor", "product_name", "bios_vendor", "board_vendor"):
        with contextlib.suppress(OSError):
            values.append((dmi_dir / name).read_text().strip().lower())
    text = " ".join(values)
    if "amazon" in text:
        return "aws"
    if "google" in text:
        return "gcp"
    return None


def resolve_endpoints(
    mode: str = "auto",
    *,
    aws: str | None = None,
    gcp: str | None = None,
    environ: Mapping[str, str] | None = None,
    dmi_dir: Path = DMI_DIR,
) -> MetadataEndpoints:
    """Which metadata services to watch.

    `mode` is `off` (none), `on` (explicit URLs, else the environment, else the real default
    addresses of both clouds) or `auto` (explicit URLs, else the environment, else the real
    address of the cloud this process is running on, else none).
    """
    env = os.environ if environ is None else environ
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"interruption watch mode must be auto, on or off, got {mode!r}")
    if mode == "off":
        return MetadataEndpoints()
    aws_url = aws or env.get(AWS_URL_ENV) or None
    gcp_url = gcp or env.get(GCP_URL_ENV) or None
    if aws_url or gcp_url:
        return MetadataEndpoints(_strip(aws_url), _strip(gcp_url))
    if mode == "on":
        return MetadataEndpoints(AWS_DEFAULT_URL, GCP_DEFAULT_URL)
    cloud = detect_cloud(dmi_dir)
    if cloud == "aws":
        return MetadataEndpoints(aws=AWS_DEFAULT_URL)
    if cloud == "gcp":
        return MetadataEndpoints(gcp=GCP_DEFAULT_URL)
    return MetadataEndpoints()


def _strip(url: str | None) -> str | None:
    return url.rstrip("/") if url else None


class MetadataPoller:
    """One poll of every configured metadata service (blocking; the watcher calls it)."""

    def __init__(
        self,
        endpoints: MetadataEndpoints,
        *,
        watch_rebalance: bool = True,
        rebalance_drain_s: float = AWS_NOTICE_S,
        gcp_notice_s: float = GCP_NOTICE_S,
        timeout_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.endpoints = endpoints
        self.watch_rebalance = watch_rebalance
        self.rebalance_drain_s = rebalance_drain_s
        self.gcp_notice_s = gcp_notice_s
        self.timeout_s = timeout_s
        self._monotonic = monotonic
        self._wall = wall
        self._token: str | None = None
        self._token_expires = 0.0
        # Straight to the address, never through an HTTP(S)_PROXY from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def poll(self) -> Notice | None:
        """A notice if any service reports one now; errors are logged and read as no notice."""
        for check in (self._aws, self._gcp):
            try:
                notice = check()
            except (OSError, ValueError) as error:
                logger.debug("metadata poll failed: %s", error)
                continue
            if notice is not None:
                return notice
        return None

    def _aws(self) -> Notice | None:
        base = self.endpoints.aws
        if base is None:
            return None
        body = self._aws_get(base, AWS_SPOT_PATH)
        if body is not None:
            action = json.loads(body)
            stop_at = _parse_time(str(action.get("time", "")))
            remaining = AWS_NOTICE_S if stop_at is None else stop_at - self._wall()
            return Notice(
                "aws-spot",
                self._monotonic() + max(0.0, remaining),
                f"{action.get('action', 'stop')} at {action.get('time', '?')}",
            )
        if self.watch_rebalance:
            body = self._aws_get(base, AWS_REBALANCE_PATH)
            if body is not None:
                notice_time = json.loads(body).get("noticeTime", "?")
                return Notice(
                    "aws-rebalance",
                    self._monotonic() + self.rebalance_drain_s,
                    f"rebalance recommendation at {notice_time}",
                )
        return None

    def _aws_get(self, base: str, path: str) -> bytes | None:
        """The body at `path`, or None on 404 (no notice). Refreshes the token on 401."""
        for _ in range(2):
            request = urllib.request.Request(
                base + path, headers={"X-aws-ec2-metadata-token": self._aws_token(base)}
            )
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    body: bytes = response.read()
                    return body
            except urllib.error.HTTPError as error:
                error.close()
                if error.code == 404:
                    return None
                if error.code != 401:
                    raise
                self._token = None  # Expired or revoked: fetch a new one and retry once.
        raise ValueError(f"IMDS at {base} keeps refusing the session token")

    def _aws_token(self, base: str) -> str:
        now = self._monotonic()
        if self._token is None or now >= self._token_expires:
            request = urllib.request.Request(
                base + AWS_TOKEN_PATH,
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL_S)},
            )
            with self._opener.open(request, timeout=self.timeout_s) as response:
                self._token = response.read().decode().strip()
            self._token_expires = now + AWS_TOKEN_TTL_S / 2
        return self._token

    def _gcp(self) -> Notice | None:
        base = self.endpoints.gcp
        if base is None:
            return None
        request = urllib.request.Request(
            base + GCP_PREEMPTED_PATH, headers={"Metadata-Flavor": "Google"}
        )
        with self._opener.open(request, timeout=self.timeout_s) as response:
            # A real metadata server always sets this; anything else is not the metadata server.
            if response.headers.get("Metadata-Flavor") != "Google":
                raise ValueError(f"{base} did not answer as the GCE metadata server")
            if response.read().strip().upper() == b"TRUE":
                return Notice("gcp-preempted", self._monotonic() + self.gcp_notice_s, "preempted")
        return None


class InterruptionWatcher:
    """Polls `MetadataPoller` on a daemon thread and calls `on_notice` once per notice source.

    Polling goes on after a notice: a rebalance recommendation (a soft, distant deadline) may
    be followed by the spot instance-action (the real, nearer one), and the worker must hear it.
    """

    def __init__(
        self,
        poller: MetadataPoller,
        on_notice: Callable[[Notice], None],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.poller = poller
        self.interval_s = interval_s
        self._on_notice = on_notice
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin polling (a no-op when no metadata service is configured)."""
        if self._thread is not None or not self.poller.endpoints.enabled:
            return
        self._thread = threading.Thread(
            target=self._loop, name="inferstack-interruption", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        reported: set[str] = set()
        while not self._stop.is_set():
            notice = self.poller.poll()
            if notice is not None and notice.source not in reported:
                reported.add(notice.source)
                logger.warning("interruption notice from %s: %s", notice.source, notice.detail)
                self._on_notice(notice)
            self._stop.wait(self.interval_s)


def _parse_time(text: str) -> float | None:
    """Seconds since the epoch of an IMDS timestamp such as `2017-09-18T08:22:00Z`."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


__all__ = [
    "AWS_NOTICE_S",
    "GCP_NOTICE_S",
    "InterruptionWatcher",
    "MetadataEndpoints",
    "MetadataPoller",
    "Notice",
    "detect_cloud",
    "resolve_endpoints",
]
