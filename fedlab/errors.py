"""The exception hierarchy of fedlab.

Every error fedlab raises derives from :class:`FedlabError`, and its message names the
offending value and says what to do about it::

    FedlabError
    ├── RecordError            a record was given a key or value of the wrong type
    ├── CodecError             bytes could not be decoded into a Message (truncated, lying, too large)
    ├── MessageError           a Message was built or used incorrectly
    ├── ClientAppError         a ClientApp was set up incorrectly (duplicate handler, bad Mod)
    ├── ServerAppError         a ServerApp was set up incorrectly (no main function)
    ├── GridError              the Grid could not deliver or collect messages
    ├── StrategyError          a strategy was misconfigured
    │   └── AggregationError   replies could not be aggregated (mismatched keys or shapes)
    ├── SimulationError        the simulation runtime could not start or finished abnormally
    ├── FederationError        a Federation was misconfigured
    ├── HistoryError           a History was queried wrongly or given damaged JSON
    ├── CheckpointError        a checkpoint is missing, damaged, or belongs to another federation
    ├── DatasetError           a federated dataset or partitioner was misconfigured or misused
    ├── BundleError            an app bundle could not be built, or was refused (tampered, unsigned)
    ├── DeployError            the deployment runtime (SuperLink, SuperNode, GrpcGrid) failed
    │   └── TransferError      an object arrived damaged (checksum or size mismatch) or too large
    └── MissingDependencyError an optional package is needed: the message gives the pip command
"""

from __future__ import annotations

__all__ = [
    "AggregationError",
    "BundleError",
    "CheckpointError",
    "ClientAppError",
    "CodecError",
    "DatasetError",
    "DeployError",
    "FederationError",
    "FedlabError",
    "GridError",
    "HistoryError",
    "MessageError",
    "MissingDependencyError",
    "RecordError",
    "ServerAppError",
    "SimulationError",
    "StrategyError",
    "TransferError",
]


class FedlabError(Exception):
    """Base class of every error raised by fedlab."""


class RecordError(FedlabError, TypeError):
    """A record was given a key or a value of a type it does not accept."""


class CodecError(FedlabError, ValueError):
    """Bytes could not be decoded into a Message, or a Message could not be encoded."""


class MessageError(FedlabError, ValueError):
    """A Message was built or used incorrectly."""


class ClientAppError(FedlabError):
    """A ClientApp was set up incorrectly."""


class ServerAppError(FedlabError):
    """A ServerApp was set up incorrectly."""


class GridError(FedlabError):
    """The Grid could not deliver messages or collect replies."""


class StrategyError(FedlabError, ValueError):
    """A strategy was configured with values it cannot work with."""


class AggregationError(StrategyError):
    """Replies could not be aggregated, e.g. because their arrays do not match."""


class SimulationError(FedlabError):
    """The simulation runtime could not start or ended abnormally."""


class FederationError(FedlabError, ValueError):
    """A Federation was configured with values it cannot work with."""


class HistoryError(FedlabError, ValueError):
    """A History was asked for something it does not hold, or given damaged JSON."""


class BundleError(FedlabError):
    """An app bundle could not be built, or was refused when loaded (tampered or untrusted)."""


class DatasetError(FedlabError, ValueError):
    """A federated dataset or a partitioner was configured or queried with values it cannot use."""


class CheckpointError(FedlabError):
    """A checkpoint is missing or damaged, or does not match the federation resuming it."""


class DeployError(FedlabError):
    """The deployment runtime could not start, connect, or complete a request."""


class TransferError(DeployError):
    """An object (message content or bundle) arrived damaged or larger than allowed."""


class MissingDependencyError(FedlabError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package {package!r}, which is not installed. "
            f'Install it with: pip install "fedlab-sdk[{extra}]"'
        )
        self.package = package
        self.extra = extra
