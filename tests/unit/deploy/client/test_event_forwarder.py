"""Forwarding a Grid's events: in order, in batches, never blocking or breaking the run."""

from __future__ import annotations

import logging

import pytest

from fedlab.deploy.client._events_forward import EventForwarder
from fedlab.events import Event, StrategyReport


def report(round_: int) -> StrategyReport:
    return StrategyReport(run_id=1, round=round_, strategy="S", info={}, timestamp=float(round_))


def test_every_event_is_sent_once_in_order_by_the_time_flush_returns() -> None:
    batches: list[list[Event]] = []
    forwarder = EventForwarder(batches.append)
    for r in range(600):
        forwarder.put(report(r))
    forwarder.flush()
    assert [e.round for batch in batches for e in batch] == list(range(600))  # type: ignore[attr-defined]
    assert max(len(b) for b in batches) <= 256
    forwarder.close()


def test_close_sends_what_is_still_queued() -> None:
    sent: list[Event] = []
    forwarder = EventForwarder(sent.extend, linger=60.0)
    forwarder.put(report(1))
    forwarder.close()
    assert sent == [report(1)]


def test_a_failing_send_is_logged_and_later_events_still_go_out(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[Event] = []
    calls = 0

    def flaky(batch: list[Event]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("SuperLink gone")
        sent.extend(batch)

    forwarder = EventForwarder(flaky)
    with caplog.at_level(logging.WARNING, logger="fedlab.deploy"):
        forwarder.put(report(1))
        forwarder.flush()
        forwarder.put(report(2))
        forwarder.close()
    assert sent == [report(2)]
    assert "Could not forward 1 event(s)" in caplog.text
