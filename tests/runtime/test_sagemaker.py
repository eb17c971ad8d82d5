"""SageMaker's container contract: `/ping` and `/invocations` over the real HTTP server.

An invocation is a v2 inference request at another path, so every abuse case of the v2 endpoint
is sent to both paths of one server and must get the same answer (status, body, headers); the
contract's own parts (ping before and after the model, the methods, the port, the `serve`
argument, the settings the SageMaker component writes) are checked on their own.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import pytest

from inferstack.components.sagemaker.container import environment
from inferstack.contract import sagemaker
from inferstack.runtime.batcher import BatcherConfig, DynamicBatcher
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.server import command
from inferstack.runtime.server.http import HttpLimits, HttpServer
from inferstack.runtime.server.routes import InferenceApp, ServedModel
from inferstack.runtime.server.sagemaker import SageMakerApp, app_for
from inferstack.runtime.server.settings import ServerSettings, resolve_settings
from inferstack.runtime.settings import SettingsError
from tests.components.factories import make_spec
from tests.runtime.fakes import GatedModel
from tests.runtime.test_http import (
    HANG_GUARD_S,
    MODEL,
    DoublerModel,
    Reply,
    doubled,
    infer,
    infer_body,
    read_reply,
    request,
    until,
)

V2 = f"/v2/models/{MODEL}/infer"
INVOCATIONS = sagemaker.INVOCATIONS_PATH


class Contract:
    """A SageMaker app on a real HTTP server, its model gated, the batcher not yet attached."""

    def __init__(self, limits: HttpLimits, queue: int) -> None:
        self.model = GatedModel(open_gate=True)
        self.metrics = RuntimeMetrics(MODEL)
        self.batcher = DynamicBatcher(
            self.model.predict_batch,
            BatcherConfig(max_batch_size=8, max_queue_delay_s=0.0, max_queue_size=queue),
            name=MODEL,
            metrics=self.metrics,
        )
        self.app = SageMakerApp(MODEL, self.metrics)
        self.server = HttpServer(self.app, limits)
        self.writers: list[asyncio.StreamWriter] = []

    def load(self) -> None:
        """The model is loaded and warm: what the server does once start-up ends."""
        self.app.served = ServedModel(DoublerModel(self.model), self.batcher, self.metrics)

    async def ask(self, raw: bytes) -> Reply:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        self.writers.append(writer)
        writer.write(raw)
        return await read_reply(reader, head_only=raw.startswith(b"HEAD"))


def run(
    scenario: Callable[[Contract], Awaitable[None]],
    *,
    limits: HttpLimits | None = None,
    queue: int = 1024,
    loaded: bool = True,
) -> None:
    async def serve() -> None:
        contract = Contract(limits or HttpLimits(), queue)
        await contract.batcher.start()
        await contract.server.start("127.0.0.1", 0)
        if loaded:
            contract.load()
        try:
            await scenario(contract)
        finally:
            contract.model.gate.set()
            for writer in contract.writers:
                writer.close()
            await contract.server.close(grace_s=0)
            await contract.batcher.close()
            contract.app.decoder.close()

    asyncio.run(asyncio.wait_for(serve(), HANG_GUARD_S))


def test_invocations_answer_a_v2_request_as_the_v2_endpoint_does() -> None:
    async def scenario(c: Contract) -> None:
        via_sagemaker = await c.ask(infer(1.0, 2.0, path=INVOCATIONS))
        via_v2 = await c.ask(infer(1.0, 2.0))
        assert doubled(via_sagemaker) == [[2.0, 2.0], [4.0, 4.0]]
        assert via_sagemaker.body == via_v2.body

    run(scenario)


def test_ping_is_503_until_the_model_is_loaded_then_200() -> None:
    async def scenario(c: Contract) -> None:
        assert (await c.ask(request("GET", sagemaker.PING_PATH))).status == 503
        # Not even admitted while loading: the same 503 as the v2 endpoint's, with Retry-After.
        loading = await c.ask(infer(1.0, path=INVOCATIONS))
        assert loading.status == 503
        assert loading.headers["retry-after"] == "1"
        c.load()
        assert (await c.ask(request("GET", sagemaker.PING_PATH))).status == 200
        assert (await c.ask(request("HEAD", sagemaker.PING_PATH))).status == 200
        c.app.draining = True  # SIGTERM: SageMaker must stop routing here
        assert (await c.ask(request("GET", sagemaker.PING_PATH))).status == 503

    run(scenario, loaded=False)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("POST", sagemaker.PING_PATH, "GET"), ("GET", INVOCATIONS, "POST")],
)
def test_a_wrong_method_gets_405_naming_the_right_one(method: str, path: str, allow: str) -> None:
    async def scenario(c: Contract) -> None:
        reply = await c.ask(request(method, path))
        assert reply.status == 405
        assert reply.headers["allow"] == allow
        assert allow in reply.error

    run(scenario)


ABUSE = {
    "not json": (b"{" * 2000, ()),
    "no inputs": (b'{"outputs": []}', ()),
    "wrong input name": (
        b'{"inputs":[{"name":"z","datatype":"FP32","shape":[1,2],"data":[1,2]}]}',
        (),
    ),
    "shape and data disagree": (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2]}]}',
        (),
    ),
    "wrong datatype": (
        b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1,2],"data":["a","b"]}]}',
        (),
    ),
    "binary header past the body": (
        infer_body(1.0),
        (("inference-header-content-length", "99999"),),
    ),
}


@pytest.mark.parametrize("case", sorted(ABUSE))
def test_every_bad_body_gets_the_v2_endpoints_answer(case: str) -> None:
    body, headers = ABUSE[case]

    async def scenario(c: Contract) -> None:
        via_v2 = await c.ask(request("POST", V2, body, headers=headers))
        via_sagemaker = await c.ask(request("POST", INVOCATIONS, body, headers=headers))
        assert 400 <= via_v2.status < 500, via_v2
        assert (via_sagemaker.status, via_sagemaker.body) == (via_v2.status, via_v2.body)
        assert c.model.calls == []

    run(scenario)


def test_a_body_over_the_limit_gets_413_at_both_paths() -> None:
    async def scenario(c: Contract) -> None:
        for path in (V2, INVOCATIONS):
            reply = await c.ask(request("POST", path, b"0" * 4096))
            assert reply.status == 413
            assert reply.headers["connection"] == "close"

    run(scenario, limits=HttpLimits(max_request_bytes=1024))


def test_a_full_queue_refuses_an_invocation_with_429_before_decoding_it() -> None:
    async def scenario(c: Contract) -> None:
        c.model.gate.clear()
        reader, held = await asyncio.open_connection("127.0.0.1", c.server.port)
        c.writers.append(held)
        held.write(infer(1.0, path=INVOCATIONS))
        assert await c.model.entered.get() == 1
        _, queued = await asyncio.open_connection("127.0.0.1", c.server.port)
        c.writers.append(queued)
        queued.write(infer(2.0, path=INVOCATIONS))
        await until(lambda: c.batcher.queue_depth == 1)
        # Not even JSON: a 429 rather than a 400 shows that nothing decoded the body.
        refused = await c.ask(request("POST", INVOCATIONS, b"{" * 2000))
        assert refused.status == 429
        assert int(refused.headers["retry-after"]) >= 1
        c.model.gate.set()
        assert doubled(await read_reply(reader)) == [[2.0, 2.0]]

    run(scenario, queue=1)


def test_the_protocol_setting_chooses_the_app_and_port_8080() -> None:
    settings = resolve_settings({}, environ={"INFERSTACK_MODEL": "builtin://mlp"})
    assert settings.protocol == "kserve"
    assert type(app_for(settings, MODEL, RuntimeMetrics(MODEL))) is InferenceApp
    environ = {"INFERSTACK_MODEL": "builtin://mlp", "INFERSTACK_PROTOCOL": "sagemaker"}
    settings = resolve_settings({}, environ=environ)
    assert settings.port == sagemaker.PORT == 8080
    assert isinstance(app_for(settings, MODEL, RuntimeMetrics(MODEL)), SageMakerApp)


def test_another_port_with_the_sagemaker_protocol_is_refused_naming_8080() -> None:
    environ = {
        "INFERSTACK_MODEL": "builtin://mlp",
        "INFERSTACK_PROTOCOL": "sagemaker",
        "INFERSTACK_PORT": "9000",
    }
    with pytest.raises(SettingsError, match="port 8080"):
        resolve_settings({}, environ=environ)


def test_serve_accepts_the_serve_argument_sagemaker_appends() -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert parser.parse_args(["serve"]).sagemaker_serve == "serve"
    assert parser.parse_args([]).sagemaker_serve is None
    with pytest.raises(SystemExit):
        parser.parse_args(["train"])


def test_the_components_container_environment_is_read_by_the_server() -> None:
    env = environment(make_spec(), batch_size=32)
    settings = resolve_settings({}, environ=env)
    assert settings.protocol == "sagemaker"
    assert settings.port == sagemaker.PORT
    assert settings.max_batch_size == 32
    assert settings.model == "builtin://mlp"
    assert isinstance(settings, ServerSettings)
