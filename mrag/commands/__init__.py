"""Subcommands of ``python -m mrag``: one module each, with ``add_parser`` and ``run``."""
