"""A fixture that takes the network away, so tests prove local loading never reaches for it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hugging Face offline mode, and any attempt to open a connection fails loudly."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(f"an offline test tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
