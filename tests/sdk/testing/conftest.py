"""The testing kit's own tests use the kit's fixtures, one network for this package."""

from tests.support.kit import _no_leaked_threads, blocks_network

__all__ = ["_no_leaked_threads", "blocks_network"]
