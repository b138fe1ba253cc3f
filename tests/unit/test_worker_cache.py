"""worker_cache builds an object once per worker and never shares it between workers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fedlab as fl
from fedlab.cache import clear_worker_cache
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg


def _run(backend: str, builds: list[int], users: dict[int, set[int]]) -> None:
    app = fl.ClientApp()
    lock = threading.Lock()

    def build() -> list[float]:
        with lock:
            builds.append(threading.get_ident())
        return [0.0]

    @app.train()
    def train(msg: Message, ctx: fl.Context) -> Message:
        model = fl.worker_cache("model", build)
        with lock:
            users.setdefault(id(model), set()).add(threading.get_ident())
        return msg.reply(RecordDict({"arrays": msg.content.array_record("arrays"),
                                     "metrics": MetricRecord({"num-examples": 1})}))

    fed = fl.Federation(app, FedAvg(fraction_evaluate=0.0), num_clients=12, seed=0, backend=backend,
                        max_workers=3, display="none", initial_arrays=ArrayRecord([np.zeros(3)]))
    fed.run(rounds=3)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_worker_cache()


def test_the_inline_backend_builds_the_cached_object_once_for_the_whole_run() -> None:
    builds: list[int] = []
    users: dict[int, set[int]] = {}
    _run("inline", builds, users)
    assert len(builds) == 1 and len(users) == 1


def test_the_threads_backend_builds_one_object_per_thread_and_never_shares_it() -> None:
    builds: list[int] = []
    users: dict[int, set[int]] = {}
    _run("threads", builds, users)  # 36 client calls on 3 threads
    assert 1 <= len(builds) <= 3
    assert len(set(builds)) == len(builds)  # each thread built its own
    assert all(len(threads) == 1 for threads in users.values())  # and only it used it
