"""``python -m blocks_devnet.cli``: the ``blocks`` command (as ``python -m blocks_devnet``)."""

import sys

from blocks_network.cli.entry import blocks

sys.exit(blocks())
