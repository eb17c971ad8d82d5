"""Code generated from `../proto/` by `python -m inferstack.runtime.grpc.generate`; do not edit."""
