"""The analyzer replay: a real CrossGuard pack driven over gRPC the way the Pulumi engine drives it.

`pack_process` starts the pack, `pack_config` reconciles and validates its config, `marshal`
shapes properties as the engine sends them, `session` replays the RPC sequence and `report`
prints the verdict. Only `session` imports gRPC and the Pulumi SDK, so `inferstack check` can
start the pack before it pays for them; this package's namespace holds the light parts.
"""

from inferstack.offline.analyzer.pack_config import ConfigEntry, PackConfigError, load_config_file
from inferstack.offline.analyzer.pack_process import (
    PackInfo,
    PackProcess,
    PolicyRunError,
    StackContext,
    read_pack,
)

__all__ = [
    "ConfigEntry",
    "PackConfigError",
    "PackInfo",
    "PackProcess",
    "PolicyRunError",
    "StackContext",
    "load_config_file",
    "read_pack",
]
