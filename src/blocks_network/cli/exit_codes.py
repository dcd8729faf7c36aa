"""Exit codes shared by the command-line tools (one table in the README covers them all).

``blocks`` (``blocks_network.cli.common``) re-exports them; ``blocks-run`` maps its
start-up errors onto them so a supervisor can tell "fix the setup" (2) from "try again
later" (3).
"""

from __future__ import annotations

TYPE_CHECKING = False  # the entry points read these before typing is imported (cli/entry.py)

if TYPE_CHECKING:
    from typing import Final

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE"]

#: Done: a task completed; ``blocks-run`` stopped by Ctrl+C/SIGTERM after draining.
EXIT_OK: Final = 0
#: Failed: a task failed or the network refused (an invalid API key, an agent forced offline,
#: the control channel refusing a running instance's access token).
EXIT_FAILURE: Final = 1
#: Usage or configuration: a bad option, no API key, a bad card, registry or handler file.
EXIT_USAGE: Final = 2
#: The network (CDM or backend) could not be reached.
EXIT_UNREACHABLE: Final = 3
#: Interrupted (128 + SIGINT): a second Ctrl+C, or Ctrl+C before start-up finished.
EXIT_INTERRUPTED: Final = 130
