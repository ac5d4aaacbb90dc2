"""First-party Python capability providers, one module or package per contract.

Each module registers its providers through the ``wascc.providers``
entry-point group (see setup.cfg) with a ``wascc_providers`` hook.
"""
