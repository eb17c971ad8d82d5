"""inferstack: cheap GPU inference without breaking latency budgets."""

__version__ = "0.1.0"
__all__ = ["__version__"]
