"""Deployment: SuperLink, SuperNodes, the gRPC Grid, app bundles and managed local runs."""

from __future__ import annotations

__all__: list[str] = []
