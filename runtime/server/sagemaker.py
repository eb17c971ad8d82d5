"""SageMaker's container contract on top of the v2 app: `GET /ping`, `POST /invocations`.

"Use your own inference code with hosting services"
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html): SageMaker
runs the image as `docker run <image> serve`, sends requests to port 8080, waits for `/ping` to
answer 200 before routing to a new copy, and posts each request's body to `/invocations` as the
caller sent it. Here that body is a KServe v2 inference request, so an invocation is answered
exactly as `POST /v2/models/<model>/infer` is: the same admission (429 when the queue is full,
503 while loading or draining, decided at header time), the same decoding and the same errors.
The v2 and metrics endpoints stay where they are. Chosen by the `protocol: sagemaker` setting
(`INFERSTACK_PROTOCOL`), which also makes 8080 the port.
"""

from __future__ import annotations

from collections.abc import Mapping

from inferstack.contract import sagemaker
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.protocol import error_body
from inferstack.runtime.server.routes import InferenceApp, Response
from inferstack.runtime.server.settings import ServerSettings

_ALLOW_GET = (("allow", "GET"),)
_ALLOW_POST = (("allow", "POST"),)


class SageMakerApp(InferenceApp):
    """The v2 app with SageMaker's two routes in front of it."""

    @property
    def _infer_path(self) -> str:
        return f"/v2/models/{self.model_name}/infer"

    def admit(self, path: str, headers: Mapping[str, str]) -> Response | None:
        """An invocation is admitted as a v2 inference request is."""
        if path == sagemaker.INVOCATIONS_PATH:
            return super().admit(self._infer_path, headers)
        return super().admit(path, headers)

    async def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """`/ping` and `/invocations`; any other path as the v2 app answers it."""
        if path == sagemaker.PING_PATH:
            if method not in ("GET", "HEAD"):
                return Response(
                    405, error_body(f"{method} is not allowed here; use GET"), headers=_ALLOW_GET
                )
            # SageMaker routes to a copy only once it answers 200: not before the model is
            # loaded and warm, and not while it drains.
            return Response(200 if self.ready else 503)
        if path == sagemaker.INVOCATIONS_PATH:
            if method != "POST":
                message = f"{method} is not allowed here; POST a KServe v2 inference request"
                return Response(405, error_body(message), headers=_ALLOW_POST)
            return await super().handle("POST", self._infer_path, headers, body)
        return await super().handle(method, path, headers, body)


def app_for(settings: ServerSettings, model_name: str, metrics: RuntimeMetrics) -> InferenceApp:
    """The app the server runs: SageMaker's contract when the settings choose it."""
    if settings.protocol == sagemaker.PROTOCOL_VALUE:
        return SageMakerApp(model_name, metrics)
    return InferenceApp(model_name, metrics)


__all__ = ["SageMakerApp", "app_for"]
