"""The SuperNode: a client daemon that runs a federation's ClientApp on this machine.

Run one with ``python -m fedlab.deploy.supernode --superlink HOST:PORT --insecure`` (or
``fedlab supernode``), or in-process with :class:`SuperNode`.
"""

from __future__ import annotations

from fedlab.deploy.supernode.apps import load_app, parse_node_config
from fedlab.deploy.supernode.command import main
from fedlab.deploy.supernode.node import SuperNode

__all__ = ["SuperNode", "load_app", "main", "parse_node_config"]
