"""The process that drives a run for the SuperLink: ``python -m fedlab.deploy.serverapp``."""

from __future__ import annotations

from fedlab.deploy.serverapp.process import main, serve_run

__all__ = ["main", "serve_run"]
