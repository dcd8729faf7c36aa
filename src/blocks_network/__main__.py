"""``python -m blocks_network``: the ``blocks-run`` command (run an agent instance)."""

import sys

from blocks_network.cli.entry import blocks_run

sys.exit(blocks_run())
