"""fuselab: experiments on multimodal fusion with recurrent networks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fuselab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
