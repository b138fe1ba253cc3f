"""The client side: ClientApp and the Mod plumbing."""

from fedlab.client.clientapp import ClientApp, Lifespan
from fedlab.client.mod import CallNext, Handler, Mod, compose

__all__ = ["CallNext", "ClientApp", "Handler", "Lifespan", "Mod", "compose"]
