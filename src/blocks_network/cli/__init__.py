"""The SDK's command-line tools: ``blocks`` (:mod:`blocks_network.cli.blocks`) and
``blocks-run`` (:mod:`blocks_network.cli.run_agent`).

Importing this package loads nothing else: each command imports what it runs.
"""
