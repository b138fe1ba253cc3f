"""History.failure_report(): every failed or timed-out reply on one line, named by partition id."""

from __future__ import annotations

from fedlab.events import ClientReplied, RunStarted
from fedlab.history import History
from fedlab.message import Error, ErrorCode
from tests.unit.dashboard.test_widget_failures import NODES, run_events


def test_the_report_lists_raised_refused_and_timed_out_replies_with_partition_first() -> None:
    history = History()
    for event in run_events():
        history(event)  # type: ignore[arg-type]
    assert history.failure_report().splitlines() == [
        "3 client failures:",
        "  client 7 (node 55) · round 1 · train · KeyError: \"no column 'age'\"",
        "  client 2 (node 901) · round 1 · train · REPLY_REJECTED: NaN in array 0",
        "  client 7 (node 55) · round 2 · train · TIMEOUT: no reply within 5 s",
    ]
    assert "Traceback (most recent call last)" in history.failures()[0]["error_reason"]
    assert NODES[0] not in [row["node_id"] for row in history.failures()]

def test_a_run_without_failures_and_a_node_without_partition() -> None:
    assert History().failure_report() == "no client failures"

    history = History()
    history(RunStarted(run_id=1, num_rounds=1, node_ids=(77,), strategy="FedAvg"))
    history(ClientReplied(run_id=1, round=1, phase="evaluate", node_id=77, metrics={}, duration_s=0.1,
                          error=Error(ErrorCode.TIMEOUT, "")))
    assert history.failure_report() == "1 client failure:\n  node 77 · round 1 · evaluate · TIMEOUT"
