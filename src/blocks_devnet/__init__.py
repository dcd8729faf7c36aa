"""A local Blocks Network: a PubNub-compatible realtime server plus the Blocks backend.

Start one with ``blocks devnet`` or, from Python, with :class:`blocks_devnet.network.LocalNetwork`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at start: see blocks_network/__init__.py

if TYPE_CHECKING:
    from blocks_network._version import __version__ as __version__


def __getattr__(name: str) -> str:
    # ``python -m blocks_devnet`` starts here: the version's metadata read waits until asked.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from blocks_network._version import __version__

    return __version__
