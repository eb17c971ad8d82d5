"""inferstack: cheap GPU inference without breaking latency budgets."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One definition: the version in pyproject.toml, as the installed distribution records it.
    __version__ = version("inferstack")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
__all__ = ["__version__"]
