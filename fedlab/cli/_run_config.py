"""``--run-config``: run config overrides in Flower's syntax.

Each ``--run-config`` value is either a path to a ``.toml`` file or space-separated
``key=value`` pairs whose values are TOML: ``num-server-rounds=5 learning-rate=0.05``,
``optimizer="adam"`` (strings are quoted, so the shell needs ``'optimizer="adam"'``),
``use-gpu=true``. The flag may be repeated; later values win. Dotted keys and nested
tables flatten to dotted names (``optimizer.lr``), as they do in Flower.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fedlab.context import UserConfig
from fedlab.errors import FederationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["flatten_config", "parse_run_config"]

_CLOSING = {"[": "]", "{": "}"}


def parse_run_config(values: Sequence[str], directory: Path | None = None) -> UserConfig:
    """Merge ``--run-config`` values into one config; raise FederationError on a bad one.

    ``directory`` is where relative ``.toml`` paths are found (default: the current one).

    Examples
    --------
    >>> parse_run_config(["num-server-rounds=2 learning-rate=0.05", 'name="run a"'])
    {'num-server-rounds': 2, 'learning-rate': 0.05, 'name': 'run a'}
    """
    config: UserConfig = {}
    for value in values:
        if "=" not in value and value.strip().endswith(".toml"):
            config.update(_from_file(Path(directory or Path.cwd()) / value.strip(), value))
            continue
        for key, text in _pairs(value):
            config.update(_parse_pair(key, text))
    return config


def _from_file(path: Path, given: str) -> UserConfig:
    try:
        table = tomllib.loads(path.read_text())
    except OSError as exc:
        raise FederationError(
            f"--run-config {given}: cannot read this TOML file ({exc.strerror or exc}); give an "
            "existing .toml file or key=value pairs."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise FederationError(f"--run-config {given} is not valid TOML: {exc}.") from None
    return flatten_config(table, f"--run-config {given}")


def _pairs(text: str) -> Iterator[tuple[str, str]]:
    """Split ``text`` into (key, value text) pairs; a quoted or bracketed value may hold spaces."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        if i >= n or text[i] != "=" or not key:
            token = text[start:].split(maxsplit=1)[0]
            where = "" if token == text.strip() else f" in {text!r}"
            raise FederationError(
                f"--run-config takes key=value pairs separated by spaces (or a .toml file), got "
                f"{token!r}{where}; e.g. --run-config "
                '"num-server-rounds=5 learning-rate=0.05".'
            )
        i += 1
        end = _value_end(text, i)
        yield key, text[i:end]
        i = end


def _value_end(text: str, i: int) -> int:
    """Where the value starting at ``i`` ends: the next space outside quotes and brackets."""
    depth, quote, n = 0, "", len(text)
    while i < n:
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in _CLOSING:
            depth += 1
        elif char in _CLOSING.values():
            depth -= 1
        elif char.isspace() and depth <= 0:
            return i
        i += 1
    return n


def _parse_pair(key: str, text: str) -> UserConfig:
    try:
        tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise FederationError(
            f"--run-config {key}={text}: {key!r} is not a TOML key; use letters, digits, '-', "
            "'_' and '.' (e.g. num-server-rounds)."
        ) from None
    try:
        table = tomllib.loads(f"{key} = {text}")
    except tomllib.TOMLDecodeError:
        fix = (
            "close the quotes, and escape quotes inside with a backslash"
            if text[:1] in "\"'" and text
            else f'strings in double quotes: {key}="{text}" (in a shell, quote the whole '
            f"pair: '{key}=\"{text}\"')"
        )
        raise FederationError(
            f"--run-config {key}={text}: {text!r} is not a TOML value. Numbers and true/false "
            f"are written bare, {fix}."
        ) from None
    return flatten_config(table, f"--run-config {key}={text}")


def flatten_config(table: Mapping[str, Any], origin: str) -> UserConfig:
    """Flatten nested tables to dotted keys; raise FederationError naming ``origin`` on a bad value.

    Examples
    --------
    >>> flatten_config({"optimizer": {"lr": 0.1}, "rounds": 2}, "example")
    {'optimizer.lr': 0.1, 'rounds': 2}
    """
    config: UserConfig = {}
    for name, value in _flatten(table, ""):
        if not isinstance(value, bool | int | float | str):
            raise FederationError(
                f"{origin}: {name} is a {type(value).__name__}, but run config values are bools, "
                "numbers or strings."
            )
        config[name] = value
    return config


def _flatten(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
