"""``python -m blocks_devnet``: the ``blocks`` command (``blocks devnet`` starts a network)."""

import sys

from blocks_network.cli.entry import blocks

sys.exit(blocks())
