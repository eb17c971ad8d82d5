"""What runs in the inference image: `inferstack serve`, `inferstack work` and `inferstack profile`.

- `server/`: the KServe v2 HTTP server (`inferstack serve`);
- `worker/`: the queue worker (`inferstack work`);
- `profiler`: `inferstack profile`, a model measured on this hardware;
- what the server and the worker share: `batcher` (dynamic batching), `models` (loaders behind
  one `LoadedModel` interface), `model_process` (model instances in child processes),
  `metrics` (the batcher's and the HTTP layer's series), `tensors` (signatures and v2
  datatypes), `protocol/` (the v2 wire format) and `settings` (flags, environment and config
  file, layered);
- the worker's backends, one per external service behind a small interface: `queues/` and
  `results/`;
- `Containerfile` and `requirements.lock`: the image.

Nothing is imported here: each command loads only what it needs.
"""

__all__ = [
    "batcher",
    "metrics",
    "model_process",
    "models",
    "profiler",
    "protocol",
    "queues",
    "results",
    "server",
    "settings",
    "tensors",
    "worker",
]
