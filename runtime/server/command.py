"""`inferstack serve`: serve one model over the KServe v2 protocol with dynamic batching.

Every setting can come from a flag, an environment variable (`INFERSTACK_<SETTING>`, what the
Kubernetes Deployment uses) or a config file (`--config`, YAML or JSON), in that precedence
(`runtime/settings.py`); the server's own settings are `server/settings.py`. Exit code 2 on bad
settings or a model that cannot load; otherwise the server's (`lifecycle.py`).
"""

from __future__ import annotations

import argparse
import sys

from inferstack.runtime.server.settings import ServerSettings, resolve_settings
from inferstack.runtime.settings import SettingsError, add_setting_flags

_HELP = {
    "model": "model URI: builtin://mlp, a TorchScript .pt, a torch.export .pt2 or module:Class",
    "model_name": "served model name (default: derived from the URI, e.g. mlp)",
    "preferred_batch_sizes": "comma-separated batch sizes dispatched as soon as reached",
    "request_timeout_ms": "reject requests that waited this long in the queue (0: never)",
    "drain_grace_s": "on SIGTERM, seconds to finish admitted requests before exiting",
    "grpc_port": "port of the KServe v2 gRPC API and gRPC health (0: none)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; each defaults to the environment, then the config file."""
    add_setting_flags(parser, ServerSettings, _HELP)
    parser.add_argument(
        "--name", dest="model_name_alias", default=None, help="same as --model-name"
    )
    # SageMaker starts a hosting container as `docker run IMAGE serve`: behind the image's
    # `inferstack serve` entrypoint that is one more `serve`, accepted and ignored.
    parser.add_argument("sagemaker_serve", nargs="?", choices=["serve"], help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Resolve the settings and run the server until it has drained."""
    flags = {name: getattr(args, name) for name in ServerSettings.model_fields}
    if args.model_name_alias is not None and flags["model_name"] is None:
        flags["model_name"] = args.model_name_alias
    try:
        settings = resolve_settings(flags, config_file=args.config)
    except SettingsError as error:
        sys.stderr.write(f"inferstack serve: {error}\n")
        return 2
    from inferstack.runtime.models import ModelLoadError
    from inferstack.runtime.server.lifecycle import run_server

    try:
        return run_server(settings)
    except ModelLoadError as error:
        sys.stderr.write(f"inferstack serve: cannot load the model: {error}\n")
        return 2
    except OSError as error:  # A port in use, or one this process may not bind.
        sys.stderr.write(f"inferstack serve: {error}\n")
        return 2
