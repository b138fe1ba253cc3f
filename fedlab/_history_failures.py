"""How a History prints its failed replies: one line each, the client named by partition id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedlab.format import describe_error, error_type

__all__ = ["failure_text"]


def _line(row: Mapping[str, Any]) -> str:
    node, partition = row["node_id"], row["partition_id"]
    who = f"node {node}" if partition is None else f"client {partition} (node {node})"
    code, reason = row["error_code"], row["error_reason"]
    kind, first = error_type(code, reason), describe_error(code, reason)
    detail = first if first.startswith(kind) else f"{kind}: {first}"
    return f"{who} · round {row['round']} · {row['phase']} · {detail}"


def failure_text(rows: list[dict[str, Any]]) -> str:
    """``2 client failures:`` then one line per failure, oldest first (see History.failure_report)."""
    if not rows:
        return "no client failures"
    head = f"{len(rows)} client failure{'' if len(rows) == 1 else 's'}:"
    return "\n".join([head, *("  " + _line(row) for row in rows)])
