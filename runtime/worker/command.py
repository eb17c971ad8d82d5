"""`inferstack work`: the queue worker's command line.

Resolves the settings (flags, `INFERSTACK_<SETTING>` environment variables or `--config`, in that
precedence), configures logging (text, or one JSON object per line with `log_format: json`) and
runs a `WorkerProcess` (`process.py`) until it stopped. The exit code: 0 when drained, 1 when a
model process died and could not be restarted, 2 on bad settings or a queue, result store or
model that cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Final

from inferstack.runtime.redaction import RedactingFormatter, redact_text
from inferstack.runtime.settings import SettingsError, add_setting_flags
from inferstack.runtime.worker.process import WorkerProcess, WorkerStartError
from inferstack.runtime.worker.settings import FIELDS, WorkerSettings, resolve_settings

_HELP: Final = {
    "queue": "queue URI: sqs://<url or name>, pubsub://projects/P/subscriptions/S, "
    "redis://HOST:PORT/DB?stream=NAME",
    "model": "model URI: builtin://mlp, a TorchScript .pt, a torch.export .pt2 or module:Class",
    "results": "result store URI: file:///DIR, redis://HOST:PORT/DB, s3://BUCKET/PREFIX, "
    "gs://BUCKET/PREFIX (default file://$PWD/results)",
    "interruption": "watch the spot metadata services: auto (on the cloud or when a URL is "
    "set), on, off",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; each defaults to the environment, then the config file."""
    add_setting_flags(parser, WorkerSettings, _HELP)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `extra` fields."""

    _BUILTIN: Final = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._BUILTIN:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _configure_logging(settings: WorkerSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        _JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    # Every line, a client library's and a traceback included: URIs may carry passwords.
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Client libraries log every request at debug; keep ours readable.
    for noisy in ("botocore", "boto3", "urllib3", "google", "grpc", "redis", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def run(args: argparse.Namespace) -> int:
    """Resolve the settings, open queue, store and model, and work until stopped."""
    flags = {name: getattr(args, name) for name in FIELDS}
    try:
        settings = resolve_settings(flags, config_file=args.config)
    except SettingsError as error:
        sys.stderr.write(f"inferstack work: {redact_text(str(error))}\n")
        return 2
    _configure_logging(settings)
    try:
        return WorkerProcess(settings).run()
    except WorkerStartError as error:
        sys.stderr.write(f"inferstack work: {redact_text(str(error))}\n")
        return 2
