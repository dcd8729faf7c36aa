"""A local Blocks Network: a PubNub-compatible realtime server plus the Blocks backend.

Start one with ``blocks devnet`` or, from Python, with :class:`blocks_devnet.network.LocalNetwork`.
"""

from blocks_network._version import __version__ as __version__
