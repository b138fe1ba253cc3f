"""Events as JSON text, the form in which they travel to the SuperLink and to ``fedlab log``.

An event becomes one JSON object: ``"type"`` (the class name) and its fields; an
:class:`~fedlab.Error` becomes ``{"code", "reason"}``. Reading one back only ever builds
classes defined in :mod:`fedlab.events` (looked up in a fixed table, never imported by
name), so a hostile stream cannot make the reader load anything.

Examples
--------
>>> from fedlab.events import RoundStarted
>>> text = event_to_json(RoundStarted(run_id=1, round=2, phase="train", node_ids=(5, 9), timestamp=0.0))
>>> text
'{"type": "RoundStarted", "run_id": 1, "timestamp": 0.0, "round": 2, "phase": "train", "node_ids": [5, 9], "partition_ids": []}'
>>> event_from_json(text) == RoundStarted(run_id=1, round=2, phase="train", node_ids=(5, 9), timestamp=0.0)
True
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fedlab import events as _events
from fedlab.errors import DeployError
from fedlab.events import Event
from fedlab.message import Error

__all__ = ["event_from_json", "event_to_json", "event_types"]


def event_types() -> dict[str, type[Event]]:
    """Return the event classes a JSON event may name, by class name."""
    found: dict[str, type[Event]] = {}
    for name in _events.__all__:
        value = getattr(_events, name)
        if isinstance(value, type) and issubclass(value, Event) and value is not Event:
            found[name] = value
    return found


def _plain(value: Any) -> Any:
    # Metrics may hold numpy scalars or tuples; JSON wants plain values.
    if isinstance(value, Error):
        return {"code": int(value.code), "reason": value.reason}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    return str(value)


def event_to_json(event: Event) -> str:
    """Return ``event`` as one line of JSON (see the module docstring)."""
    if not isinstance(event, Event):
        raise DeployError(f"event_to_json takes a fedlab event, got {type(event).__name__}.")
    body: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        body[f.name] = _plain(getattr(event, f.name))
    # NaN and infinities are written as Python's json reads them (a diverged loss is data).
    return json.dumps(body)


def event_from_json(text: str | bytes) -> Event:
    """Rebuild the event that :func:`event_to_json` wrote.

    Fields the class does not have are ignored (an event from a newer fedlab still reads).

    Raises
    ------
    DeployError
        If the text is not a JSON event, or names a type that is not a fedlab event.
    """
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: too deep
        raise DeployError(f"Not a JSON event ({err}): {str(text)[:80]!r}") from err
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise DeployError(f"A JSON event must be an object with a 'type'; got {str(text)[:80]!r}.")
    cls = event_types().get(body["type"])
    if cls is None:
        raise DeployError(
            f"Unknown event type {body['type']!r}; known: {', '.join(sorted(event_types()))}. "
            "Is the sender running a newer fedlab?"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            continue
        value = body[f.name]
        if f.name == "error" and isinstance(value, dict):
            try:
                value = Error(code=int(value.get("code", 0)), reason=str(value.get("reason", "")))
            except (TypeError, ValueError, OverflowError) as err:
                raise DeployError(f"JSON event {body['type']} has a malformed error ({err}).") from err
        elif isinstance(value, list) and f.name.endswith("ids"):
            value = tuple(value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise DeployError(f"JSON event {body['type']} is missing fields ({err}).") from err
