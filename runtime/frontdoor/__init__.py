"""The front door: N acceptor processes that parse HTTP and gRPC for one batcher and model.

One event loop parses every request in `inferstack serve`; on a machine with many cores that
loop, not the model, becomes the ceiling. With `acceptors` above 1 (`--acceptors`,
`INFERSTACK_ACCEPTORS`; 0: the CPU budget minus one for the model) the server's main process
keeps the batcher and the model, and N acceptor processes run the unchanged HTTP and gRPC
servers on the same ports (SO_REUSEPORT), each decoding its own requests.

- `door`: the main process: starts the acceptors, loads the model, runs the one batcher,
  publishes admission, drains everything on SIGTERM;
- `acceptor`: one acceptor process;
- `remote`: the acceptor's proxy of the batcher and of the model's signature;
- `wire`: the framed link between them (tensors as raw bytes, never pickled);
- `shared`: the shared admission and drain state, and the metrics' multiprocess mode.

Nothing is imported here: `inferstack serve` with one acceptor never loads this package.
"""

__all__ = ["acceptor", "door", "remote", "shared", "wire"]
