"""Kernel-side cost of the notebook dashboards: per event, per update sent, and the PNG.

Feeds a synthetic run (every client replies every round) into a Dashboard whose comm only
counts what it would send, with a simulated clock advancing ``--step`` seconds per event,
so the throttle behaves as in a real run while the bench measures only our own work.
Per update it prints the bytes sent (binary buffers plus the JSON of the state updates and
delta messages) and the kernel time of building and sending it (``Dashboard._push``, which
every send goes through, timed around each call).

    python bench/dashboard.py                        # 100 and 1,000 clients, 50 rounds
    python bench/dashboard.py --clients 1000 --rounds 50 --step 0.001

Then the same for the comparison dashboard (``fl.compare``) of three federations run one
after another (``--federations``), whose curves and table travel as JSON and its heatmap as a buffer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import comm
from comm.base_comm import BaseComm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's run generator


class CountingComm(BaseComm):
    """Counts the comm messages a widget publishes: state updates and custom messages."""

    def __init__(self, **kwargs: Any) -> None:
        self.updates = 0
        self.customs = 0
        self.bytes = 0
        self.json_bytes = 0
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        if msg_type != "comm_msg" or data.get("method") not in ("update", "custom"):
            return
        if data["method"] == "update":
            self.updates += 1
            self.json_bytes += len(json.dumps(data.get("state", {})))
        else:
            self.customs += 1
            self.json_bytes += len(json.dumps(data.get("content", {})))
        self.bytes += sum(len(memoryview(b).cast("B")) for b in buffers or [])


def measure(clients: int, rounds: int, step: float) -> None:
    from fedlab.dashboard import Dashboard
    from fedlab.dashboard._model import DashboardModel
    from tests.unit.dashboard.test_widget import FakeClock, events_of_a_run

    comm.create_comm = lambda **kwargs: CountingComm(**kwargs)  # type: ignore[assignment]
    clock = FakeClock()
    view = Dashboard(clock=clock)
    # Every send to the browser goes through _push: time it, and count it as one update.
    push = view._push
    spent: list[float] = []
    kinds: dict[str, list[tuple[int, float]]] = {"whole state": [], "delta": []}

    def timed(*args: Any, **kwargs: Any) -> None:
        channel: CountingComm = view.comm
        seq, sent = getattr(view, "seq", None), channel.bytes + channel.json_bytes
        began = time.perf_counter()
        push(*args, **kwargs)
        spent.append(time.perf_counter() - began)
        # A send that renumbers the state (or any send, before deltas existed) is a whole one.
        kind = "delta" if seq is not None and getattr(view, "seq", None) == seq else "whole state"
        kinds[kind].append((channel.bytes + channel.json_bytes - sent, spent[-1]))

    view._push = timed  # type: ignore[method-assign]
    events = list(events_of_a_run(clients, rounds, failing=3, clock=clock, step=step))
    clock.now = 0.0
    started = time.perf_counter()
    for event in events:
        clock.now += step
        view(event)
    total = time.perf_counter() - started
    bare = DashboardModel()
    started = time.perf_counter()
    for event in events:
        bare.feed(event)
    folding = time.perf_counter() - started
    channel: CountingComm = view.comm
    sends = len(spent)
    of_the_run = {kind: list(sends_of_kind) for kind, sends_of_kind in kinds.items()}  # not the flush below
    started = time.perf_counter()
    view.flush()
    flush = time.perf_counter() - started
    started = time.perf_counter()
    png = view.to_png() or b""
    picture = time.perf_counter() - started
    sent = channel.bytes + channel.json_bytes
    print(
        f"{clients:>5} clients x {rounds} rounds: {len(events):>6} events in {total:6.2f}s "
        f"({1e6 * total / len(events):5.1f} us/event incl. updates; folding alone {folding:.2f}s); "
        f"{sends} updates over {clock.now:.1f} simulated s ({sends / clock.now:.1f}/s) in "
        f"{channel.updates} state messages + {channel.customs} delta messages"
    )
    print(
        f"      per update: {sent / sends / 1e3:8.1f} kB sent ({channel.bytes / sends / 1e3:.1f} kB buffers + "
        f"{channel.json_bytes / sends / 1e3:.1f} kB JSON), kernel time {1e3 * sum(spent) / sends:6.2f} ms "
        f"(median {1e3 * sorted(spent)[sends // 2]:.2f} ms); run total {sent / 1e6:.1f} MB"
    )
    for kind, sends_of_kind in of_the_run.items():
        if sends_of_kind:
            size = sum(b for b, _ in sends_of_kind) / len(sends_of_kind)
            took = sum(t for _, t in sends_of_kind) / len(sends_of_kind)
            print(f"      {kind:>11}: {len(sends_of_kind):4d} sends, {size / 1e3:8.1f} kB and {1e3 * took:5.2f} ms each")
    print(
        f"      flush() after the run (nothing new) {1e3 * flush:.1f} ms; PNG {len(png) / 1e3:.0f} kB in {picture:.2f}s"
    )


def measure_compare(clients: int, rounds: int, step: float, federations: int) -> None:
    from fedlab.dashboard import CompareDashboard
    from fedlab.dashboard.compare_widget import compare_png
    from tests.unit.dashboard.test_widget import FakeClock, events_of_a_run

    comm.create_comm = lambda **kwargs: CountingComm(**kwargs)  # type: ignore[assignment]
    clock = FakeClock()
    names = [f"federation {k + 1}" for k in range(federations)]
    view = CompareDashboard(names, clock=clock)
    events = list(events_of_a_run(clients, rounds, failing=3, clock=clock, step=step))
    clock.now = 0.0
    started = time.perf_counter()
    for name in names:
        for event in events:
            clock.now += step
            view.feed(name, event)
    total = time.perf_counter() - started
    channel: CountingComm = view.comm
    started = time.perf_counter()
    view.flush()
    flush = time.perf_counter() - started
    one = len(json.dumps([view.curves, view.heat, view.table])) + len(view.heat_values)
    started = time.perf_counter()
    png = compare_png(view.models, view.shown_metric) or b""
    picture = time.perf_counter() - started
    count = len(events) * federations
    print(
        f"compare of {federations}: {clients:>5} clients x {rounds} rounds each: {count:>6} events in "
        f"{total:6.2f}s ({1e6 * total / count:5.1f} us/event incl. updates); {channel.updates} updates "
        f"over {clock.now:.1f} simulated s ({channel.updates / clock.now:.1f}/s), "
        f"{channel.json_bytes / 1e6:.1f} MB of JSON + {channel.bytes / 1e6:.1f} MB of buffers; one full update {1e3 * flush:.1f} ms, "
        f"{one / 1e3:.0f} kB; PNG {len(png) / 1e3:.0f} kB in {picture:.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--step", type=float, default=0.001, help="simulated seconds between events")
    parser.add_argument("--federations", type=int, default=3, help="federations in the comparison")
    args = parser.parse_args()
    for clients in args.clients:
        measure(clients, args.rounds, args.step)
    for clients in args.clients if args.federations else []:
        measure_compare(clients, args.rounds, args.step, args.federations)


if __name__ == "__main__":
    main()
