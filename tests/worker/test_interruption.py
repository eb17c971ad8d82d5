"""The interruption watcher against a fake AWS IMDSv2 / GCE metadata server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferstack.runtime.worker.interruption import (
    AWS_DEFAULT_URL,
    AWS_URL_ENV,
    GCP_DEFAULT_URL,
    GCP_URL_ENV,
    InterruptionWatcher,
    MetadataEndpoints,
    MetadataPoller,
    Notice,
    detect_cloud,
    resolve_endpoints,
)
from tests.worker.fakes import FakeMetadataServer

WALL = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MONO = 500.0


@pytest.fixture
def metadata() -> Iterator[FakeMetadataServer]:
    with FakeMetadataServer() as server:
        yield server


def poller(endpoints: MetadataEndpoints, **kwargs: object) -> MetadataPoller:
    return MetadataPoller(endpoints, monotonic=lambda: MONO, wall=lambda: WALL, **kwargs)  # type: ignore[arg-type]


def dmi(tmp_path: Path, vendor: str) -> Path:
    (tmp_path / "sys_vendor").write_text(vendor + "\n")
    return tmp_path


# Which services to watch -----------------------------------------------------------------------


def test_off_watches_nothing_even_with_urls() -> None:
    assert not resolve_endpoints("off", aws="http://127.0.0.1:1", environ={}).enabled


def test_auto_off_the_cloud_watches_nothing(tmp_path: Path) -> None:
    endpoints = resolve_endpoints("auto", environ={}, dmi_dir=dmi(tmp_path, "QEMU"))
    assert endpoints == MetadataEndpoints()


def test_auto_on_ec2_uses_the_real_imds_address(tmp_path: Path) -> None:
    endpoints = resolve_endpoints("auto", environ={}, dmi_dir=dmi(tmp_path, "Amazon EC2"))
    assert endpoints == MetadataEndpoints(aws=AWS_DEFAULT_URL)


def test_auto_on_gce_uses_the_real_metadata_address(tmp_path: Path) -> None:
    endpoints = resolve_endpoints("auto", environ={}, dmi_dir=dmi(tmp_path, "Google"))
    assert endpoints == MetadataEndpoints(gcp=GCP_DEFAULT_URL)


def test_explicit_urls_win_over_environment_and_detection(tmp_path: Path) -> None:
    endpoints = resolve_endpoints(
        "auto",
        aws="http://127.0.0.1:9/",
        environ={AWS_URL_ENV: "http://127.0.0.1:8", GCP_URL_ENV: "http://127.0.0.1:7"},
        dmi_dir=dmi(tmp_path, "Google"),
    )
    assert endpoints == MetadataEndpoints(aws="http://127.0.0.1:9", gcp="http://127.0.0.1:7")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, on or off"):
        resolve_endpoints("sometimes", environ={})


def test_detect_cloud_without_dmi_is_none(tmp_path: Path) -> None:
    assert detect_cloud(tmp_path / "missing") is None


# AWS ------------------------------------------------------------------------------------------


def test_aws_without_notice_polls_with_a_session_token(metadata: FakeMetadataServer) -> None:
    watcher = poller(MetadataEndpoints(aws=metadata.url()))
    assert watcher.poll() is None
    assert watcher.poll() is None
    # One token, reused: IMDSv2 tokens live for hours.
    assert [r for r in metadata.requests if r[0] == "PUT"] == [("PUT", "/latest/api/token")]
    assert ("GET", "/latest/meta-data/spot/instance-action") in metadata.requests


def test_aws_spot_notice_deadline_comes_from_the_action_time(
    metadata: FakeMetadataServer,
) -> None:
    metadata.state().instance_action = {"action": "terminate", "time": "2023-11-14T22:15:20Z"}
    notice = poller(MetadataEndpoints(aws=metadata.url())).poll()
    assert notice == Notice("aws-spot", MONO + 120.0, "terminate at 2023-11-14T22:15:20Z")


def test_aws_revoked_token_is_renewed(metadata: FakeMetadataServer) -> None:
    watcher = poller(MetadataEndpoints(aws=metadata.url()))
    assert watcher.poll() is None
    metadata.state().tokens.clear()  # IMDS forgot it (instance stop/start, hop limit...).
    metadata.state().instance_action = {"action": "stop", "time": "2023-11-14T22:14:20Z"}
    notice = watcher.poll()
    assert notice is not None
    assert notice.deadline == MONO + 60.0
    assert [r[0] for r in metadata.requests].count("PUT") == 2


def test_aws_rebalance_is_a_notice_with_the_configured_drain(
    metadata: FakeMetadataServer,
) -> None:
    metadata.state().rebalance = {"noticeTime": "2023-11-14T22:13:00Z"}
    notice = poller(MetadataEndpoints(aws=metadata.url()), rebalance_drain_s=45.0).poll()
    assert notice is not None
    assert (notice.source, notice.deadline) == ("aws-rebalance", MONO + 45.0)


def test_aws_rebalance_can_be_ignored(metadata: FakeMetadataServer) -> None:
    metadata.state().rebalance = {"noticeTime": "2023-11-14T22:13:00Z"}
    assert poller(MetadataEndpoints(aws=metadata.url()), watch_rebalance=False).poll() is None


# GCP ------------------------------------------------------------------------------------------


def test_gcp_not_preempted(metadata: FakeMetadataServer) -> None:
    assert poller(MetadataEndpoints(gcp=metadata.url())).poll() is None
    assert metadata.requests == [("GET", "/computeMetadata/v1/instance/preempted")]


def test_gcp_preempted_gives_the_gce_notice(metadata: FakeMetadataServer) -> None:
    metadata.state().preempted = True
    notice = poller(MetadataEndpoints(gcp=metadata.url()), gcp_notice_s=30.0).poll()
    assert notice == Notice("gcp-preempted", MONO + 30.0, "preempted")


def test_unreachable_metadata_is_no_notice() -> None:
    # Port 9 (discard) on loopback: connection refused, read as "no notice", never a crash.
    endpoints = MetadataEndpoints(aws="http://127.0.0.1:9", gcp="http://127.0.0.1:9")
    assert poller(endpoints, timeout_s=0.5).poll() is None


# The polling thread ---------------------------------------------------------------------------


def test_watcher_reports_the_first_notice_once(metadata: FakeMetadataServer) -> None:
    seen: list[Notice] = []
    fired = threading.Event()

    def on_notice(notice: Notice) -> None:
        seen.append(notice)
        fired.set()

    metadata.state("w1").preempted = True
    metadata.state("w2")  # Another worker's prefix: never preempted.
    watcher = InterruptionWatcher(
        MetadataPoller(MetadataEndpoints(gcp=metadata.url("w1"))), on_notice, interval_s=0.01
    )
    watcher.start()
    assert fired.wait(10)
    watcher.stop()
    assert [notice.source for notice in seen] == ["gcp-preempted"]


def test_watcher_without_endpoints_never_starts() -> None:
    watcher = InterruptionWatcher(MetadataPoller(MetadataEndpoints()), lambda _: None)
    watcher.start()
    assert watcher._thread is None
    watcher.stop()


def test_watcher_hears_the_spot_action_after_a_rebalance(metadata: FakeMetadataServer) -> None:
    seen: list[str] = []
    rebalance_seen = threading.Event()
    spot_seen = threading.Event()

    def on_notice(notice: Notice) -> None:
        seen.append(notice.source)
        (spot_seen if notice.source == "aws-spot" else rebalance_seen).set()

    state = metadata.state()
    state.rebalance = {"noticeTime": "2023-11-14T22:13:00Z"}
    watcher = InterruptionWatcher(
        MetadataPoller(MetadataEndpoints(aws=metadata.url())), on_notice, interval_s=0.01
    )
    watcher.start()
    assert rebalance_seen.wait(10)
    state.instance_action = {"action": "terminate", "time": "2023-11-14T22:15:20Z"}
    assert spot_seen.wait(10)
    watcher.stop()
    assert seen == ["aws-rebalance", "aws-spot"]  # Each once, although polled many times.
