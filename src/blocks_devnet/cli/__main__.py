"""``python -m blocks_devnet.cli``: the ``blocks`` command."""

import sys

from blocks_devnet.cli import main

sys.exit(main())
