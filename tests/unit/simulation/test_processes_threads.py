"""The processes backend limits torch to one thread per worker unless told otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import SimulationError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import ProcessBackend, SimulationGrid

app = ClientApp()


@app.train()
def _report_threads(msg: Message, ctx: Context) -> Message:
    import os

    omp = int(os.environ.get("OMP_NUM_THREADS", "0"))
    return msg.reply(RecordDict({"metrics": MetricRecord({"torch": torch.get_num_threads(), "omp": omp})}))


@pytest.fixture
def parent_uses_three_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def _threads_seen(backend: ProcessBackend) -> list[tuple[int, int]]:
    grid = SimulationGrid(app, 2, backend=backend, seed=0)
    try:
        content = RecordDict({"arrays": ArrayRecord({"w": np.zeros(1, np.float32)}), "config": ConfigRecord()})
        messages = [grid.create_message(content, "train", n, group_id="1") for n in grid.get_node_ids()]
        replies = grid.send_and_receive(messages, timeout=30)
    finally:
        grid.close()
    metrics = [r.content["metrics"] for r in replies]
    return [(int(m["torch"]), int(m["omp"])) for m in metrics]  # type: ignore[index, arg-type]


@pytest.mark.usefixtures("parent_uses_three_threads")
def test_each_worker_runs_torch_on_one_thread_by_default() -> None:
    assert _threads_seen(ProcessBackend(2, start_method="fork")) == [(1, 1), (1, 1)]
    assert torch.get_num_threads() == 3  # the grid's own process keeps its setting


@pytest.mark.usefixtures("parent_uses_three_threads")
def test_threads_per_worker_sets_another_count_and_none_keeps_the_inherited_one() -> None:
    assert _threads_seen(ProcessBackend(2, start_method="fork", threads_per_worker=2)) == [(2, 2), (2, 2)]
    seen = _threads_seen(ProcessBackend(2, start_method="fork", threads_per_worker=None))
    assert [t for t, _ in seen] == [3, 3]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_bad_thread_count_is_refused_with_its_value(bad: object) -> None:
    with pytest.raises(SimulationError, match="threads_per_worker"):
        ProcessBackend(2, threads_per_worker=bad)  # type: ignore[arg-type]
