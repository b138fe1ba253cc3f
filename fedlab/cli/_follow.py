"""Following a run on a SuperLink: its events, shown like a simulation's, or as JSON lines."""

from __future__ import annotations

from typing import Any

from fedlab.cli._output import Output
from fedlab.errors import FedlabError
from fedlab.events import Event, RunFinished
from fedlab.history import History

__all__ = ["follow_run"]


def follow_run(
    control: Any, run_id: int, out: Output, *, json_lines: bool
) -> tuple[History, RunFinished | None]:
    """Stream ``run_id``'s events until it finishes; return its History and last event.

    In text mode the events drive the same terminal display as a simulation. With
    ``json_lines`` every event is printed as one JSON object per line, as it arrives.
    """
    from fedlab.dashboard import select_console
    from fedlab.deploy import event_to_json

    history = History()
    display = None if out.json else select_console(out.stream)
    finished: RunFinished | None = None
    for event in control.stream_events(run_id):
        _record(history, event)
        if json_lines:
            out.stream.write(event_to_json(event) + "\n")
            out.stream.flush()
        elif display is not None:
            display(event)
        if isinstance(event, RunFinished):
            finished = event
            break
    return history, finished


def _record(history: History, event: Event) -> None:
    try:
        history(event)
    except FedlabError:  # a History refusing an odd event must not stop the stream
        pass
