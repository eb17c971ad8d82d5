"""`inferstack work`: the queue worker, consuming a queue into a result store through the model.

- `command`: the command line (flags, settings, logging, exit code);
- `settings`: `WorkerSettings`, every knob of the worker;
- `process`: `WorkerProcess`, opening queue, store and model, signals, drain and stop;
- `loop`: `Worker`, the consume-infer-store-ack loop and its drain on an interruption notice;
- `isolation`: after a model-process crash, the crashed batch again one message at a time;
- `interruption`: the spot metadata services polled for interruption notices;
- `health`: the consume loop's health and the port that serves it with `/metrics`;
- `metrics`: the worker's own Prometheus series.

The queue and result-store backends stay one level up (`queues/`, `results/`): each is an
adapter to one external service behind a small interface, loaded only when its URI scheme is
used, and the loop sees only that interface. So do the batcher, the model loaders, the metrics,
the v2 codec and the settings layering, which the server uses too. Nothing here is imported by
the server.

Nothing is imported here, so that a command loads only what it needs.
"""

__all__ = [
    "command",
    "health",
    "interruption",
    "isolation",
    "loop",
    "metrics",
    "process",
    "settings",
]
