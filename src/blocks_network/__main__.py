"""``python -m blocks_network``: the ``blocks-run`` command (run an agent instance)."""

import sys

from blocks_network.cli.run_agent import main

sys.exit(main())
