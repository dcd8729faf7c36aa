"""``blocks devnet``: the local network's command group of the SDK's ``blocks`` command.

The ``blocks`` command lives in the SDK (:mod:`blocks_network.cli.blocks`); this package
contributes ``devnet`` through the ``blocks_network.cli`` entry point
(:func:`blocks_devnet.cli.devnet.register`).
"""
