"""Subcommands of ``mrag``: one module each, with ``add_parser`` and ``run``."""
