"""How CLI commands print: rich text for people, one JSON document for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Output", "add_format_option"]


def add_format_option(parser: Any) -> None:
    """Give a subcommand ``--format {text,json}``."""
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts: one JSON document on stdout",
    )


class Output:
    """Where a command writes: rich markup on a terminal, plain text otherwise, or JSON."""

    def __init__(self, format: str = "text", stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.json = format == "json"
        self.stream = stream if stream is not None else sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def say(self, markup: str) -> None:
        """Print a line of rich markup (nothing in JSON mode)."""
        if not self.json:
            self.console.print(markup)

    def document(self, value: Mapping[str, Any] | Sequence[Any]) -> None:
        """Print ``value`` as one JSON document (JSON mode only)."""
        if self.json:
            self.stream.write(json.dumps(value, indent=2, default=_plain) + "\n")
            self.stream.flush()

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[object]], title: str = ""
    ) -> None:
        """Print a table (text mode only)."""
        if self.json:
            return
        from rich.table import Table

        table = Table(title=title or None, title_justify="left")
        for column in columns:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)

    def error(self, message: str) -> int:
        """Report a failure: ``{"success": false, ...}`` in JSON mode, else on stderr; return 1."""
        if self.json:
            self.document({"success": False, "error": message})
        else:
            self.errors.print(f"[bold red]error:[/] {_escape(message)}")
        return 1


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _plain(value: object) -> object:
    # numpy scalars in metrics know their plain Python value.
    item = getattr(value, "item", None)
    return item() if callable(item) else repr(value)
