"""Grid.wait_for_nodes: asks often while nodes are starting, then at the grid's own pace."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

import fedlab.server.grid as grid_module
from fedlab.context import UserConfig
from fedlab.errors import GridError
from fedlab.message import Message
from fedlab.server import Grid


class _Clock:
    """time.monotonic and time.sleep of a clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _StartingGrid(Grid):
    """Nodes that connect ``online_at`` seconds (of the fake clock) after the first ask."""

    poll_interval = 0.2

    def __init__(self, clock: _Clock, online_at: float) -> None:
        super().__init__(run_id=1)
        self.clock = clock
        self.online_at = online_at
        self.asked: list[float] = []

    def get_node_ids(self) -> list[int]:
        self.asked.append(self.clock.now)
        return [1, 2] if self.clock.now - self.asked[0] >= self.online_at else [1]

    def get_node_config(self, node_id: int) -> UserConfig:
        return {}

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        return []

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(grid_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(grid_module.time, "sleep", fake.sleep)
    return fake


def test_nodes_that_connect_soon_are_seen_within_a_fiftieth_of_a_second(clock: _Clock) -> None:
    grid = _StartingGrid(clock, online_at=0.25)
    assert list(grid.wait_for_nodes(2, timeout=60)) == [1, 2]
    # Not at the grid's 0.2 s pace (which would see them at 0.4 s): every 0.02 s.
    assert clock.sleeps and max(clock.sleeps) == pytest.approx(0.02)
    assert clock.now - grid.asked[0] == pytest.approx(0.26)


def test_after_two_seconds_the_grid_asks_at_its_own_pace_and_gives_up_at_the_timeout(clock: _Clock) -> None:
    grid = _StartingGrid(clock, online_at=1e9)
    with pytest.raises(GridError, match="Only 1 node"):
        grid.wait_for_nodes(2, timeout=5)
    late = [s for s, at in zip(clock.sleeps, grid.asked) if at - grid.asked[0] > 2.0 + 1e-9]
    assert late and set(map(round, [s * 1000 for s in late[:-1]])) == {200}
    assert clock.now - grid.asked[0] == pytest.approx(5.0)  # the last sleep is cut to the deadline
