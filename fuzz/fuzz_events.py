"""Fuzz the JSON events a ServerApp pushes and ``fedlab log`` reads back.

The promise (fedlab.deploy.transport.events_json.event_from_json): DeployError and
nothing else; an event that reads back writes out again. Run:
``python fuzz/fuzz_events.py fuzz/corpus/events -runs=1000000``.
"""

from __future__ import annotations

from _common import instrumented, run

with instrumented():
    from fedlab.deploy.transport.events_json import event_from_json, event_to_json
    from fedlab.errors import DeployError

TARGET = "events"


def test_one_input(data: bytes) -> None:
    """Read ``data`` as an event, as bytes and (when it is UTF-8) as str."""
    inputs: list[str | bytes] = [data]
    try:
        inputs.append(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    for text in inputs:
        try:
            event = event_from_json(text)
        except DeployError:
            continue
        event_to_json(event)


if __name__ == "__main__":
    run(test_one_input)
