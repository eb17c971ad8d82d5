"""The v2 routes' dispatch: the inference paths' shortcut answers every path as the full route."""

from __future__ import annotations

import asyncio

import pytest

from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.server.routes import InferenceApp


@pytest.mark.parametrize(
    ("name", "path", "status", "words"),
    [
        ("mlp", "/v2/models/mlp/infer", 503, "model 'mlp' is still loading"),
        ("mlp", "/v2/models/mlp/versions/1/infer", 503, "model 'mlp' is still loading"),
        ("mlp", "//v2//models/mlp/infer/", 503, "model 'mlp' is still loading"),
        ("mlp", "/v2/models/mlp/versions/2/infer", 404, "has only version 1"),
        # Names the shortcut leaves alone: their paths split into other parts.
        ("a/b", "/v2/models/a/b/infer", 404, "unknown model 'a'"),
        ("", "/v2/models//infer", 404, "unknown model 'infer'"),
    ],
)
def test_a_post_to_an_inference_path_is_answered_as_its_parts_route_it(
    name: str, path: str, status: int, words: str
) -> None:
    app = InferenceApp(name, RuntimeMetrics(name or "unnamed"))
    response = asyncio.run(app.handle("POST", path, {}, b"{}"))
    assert response.status == status
    assert words in response.body.decode()
