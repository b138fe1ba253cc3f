"""The server side: ServerApp, the Grid contract and Result."""

from fedlab.server.grid import Grid
from fedlab.server.result import Result
from fedlab.server.serverapp import ServerApp, ServerMain

__all__ = ["Grid", "Result", "ServerApp", "ServerMain"]
