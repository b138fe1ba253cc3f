"""The Backend protocol: what makes an object a backend, and naming what one lacks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fedlab.simulation import (
    Backend,
    InlineBackend,
    ProcessBackend,
    ThreadBackend,
    missing_backend_members,
)

ALL_MEMBERS = [
    "name", "deferred", "cancel_stops", "concurrency", "start", "submit", "call", "cancel", "close"
]  # fmt: skip


@pytest.mark.parametrize(
    "make", [InlineBackend, lambda: ThreadBackend(2), lambda: ProcessBackend(1)]
)
def test_every_built_in_backend_is_a_backend_that_lacks_nothing(
    make: Callable[[], Backend],
) -> None:
    backend = make()
    assert isinstance(backend, Backend)
    assert missing_backend_members(backend) == []


def test_an_object_lacks_every_member_in_the_order_the_protocol_declares_them() -> None:
    assert not isinstance(object(), Backend)
    assert missing_backend_members(object()) == ALL_MEMBERS


@pytest.mark.parametrize("member", ALL_MEMBERS)
def test_a_backend_without_one_member_is_no_backend_and_that_member_is_named(member: str) -> None:
    class Partial:
        pass

    complete = ThreadBackend(1)
    for name in ALL_MEMBERS:
        if name != member:
            setattr(Partial, name, getattr(complete, name))
    partial = Partial()
    assert not isinstance(partial, Backend)
    assert missing_backend_members(partial) == [member]


def test_a_method_set_to_none_counts_as_missing_as_it_does_for_isinstance() -> None:
    class NoCancel(ThreadBackend):
        cancel = None  # type: ignore[assignment]

    backend = NoCancel(1)
    assert not isinstance(backend, Backend)
    assert missing_backend_members(backend) == ["cancel"]
