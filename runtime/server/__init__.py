"""`inferstack serve`: one model behind the KServe v2 HTTP API, from start-up to drained exit.

- `command`: the command line (flags, settings, exit code 2 on bad settings or model);
- `settings`: `ServerSettings`, every knob of the server;
- `lifecycle`: `InferenceServer`, start-up (port first, then the model) and the graceful drain;
- `routes`: `InferenceApp`, the v2 endpoints and their answers, independent of HTTP;
- `http`: the HTTP/1.1 layer on httptools that carries the routes.

What the worker shares with the server stays one level up: the batcher, the model loaders and
model processes, the metrics, the tensor signatures, the v2 codec (`protocol/`, with the helper
process that decodes large bodies off the event loop) and the settings layering. Nothing here
is imported by the worker.

Nothing is imported here, so that `inferstack serve --help` loads only what the command needs.
"""

__all__ = ["command", "http", "lifecycle", "routes", "settings"]
