"""tests/servers.py names fixtures that exist, and its messages carry the command that fixes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.servers import BY_FIXTURE, SERVERS, Server, report

TESTS = Path(__file__).resolve().parent


def test_every_listed_fixture_is_defined() -> None:
    defined = {
        match
        for path in TESTS.rglob("*.py")
        for match in re.findall(r"^def (\w+)\(", path.read_text(), flags=re.MULTILINE)
    }
    assert set(BY_FIXTURE) - defined == set()


def test_a_missing_server_is_reported_with_its_packages_in_one_command() -> None:
    absent = Server("thing", fixtures=("thing",), packages=("thing-server",), programs=("nope-x",))
    assert not absent.present()
    assert "apt-get install -y --no-install-recommends thing-server" in absent.reason()
    lines = report([absent, SERVERS[0]]).splitlines()
    assert lines[-1].startswith("Fix: ")
    assert "thing-server" in lines[-1]
    assert SERVERS[0].packages[0] in lines[-1]


def test_an_external_server_counts_as_present(monkeypatch) -> None:
    server = Server("thing", fixtures=("thing",), packages=("x",), programs=("nope-x",),
                    environment="INFERSTACK_TEST_THING")  # fmt: skip
    monkeypatch.setenv("INFERSTACK_TEST_THING", "127.0.0.1:1")
    assert server.present()
