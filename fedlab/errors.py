"""The exception hierarchy of fedlab.

Every error fedlab raises derives from :class:`FedlabError`, and its message names the
offending value and says what to do about it. Errors are grouped by what the caller can
do, so one ``except`` clause handles a whole family: fix the configuration
(:class:`ConfigurationError`), retry or inspect the run (:class:`RunError`), repair the
data (:class:`DataError`), or install a package (:class:`MissingDependencyError`). A
built-in exception in parentheses is a further base of that class, so code that catches
``ValueError`` or ``TypeError`` keeps working::

    FedlabError
    ├── ConfigurationError (ValueError)      an argument, app or setting cannot work: fix it
    │   ├── RecordError (TypeError)          a record got a key or value of the wrong type
    │   ├── MessageError                     a Message was built or used incorrectly
    │   ├── ClientAppError                   a ClientApp was set up wrongly (duplicate handler)
    │   ├── ServerAppError                   a ServerApp was set up wrongly (no main function)
    │   ├── StrategyError                    a strategy got settings it cannot work with
    │   ├── FederationError                  a Federation, project or deployment is misconfigured
    │   └── DatasetError                     a dataset or partitioner is misconfigured or misused
    ├── RunError                             something failed while running: retry or inspect it
    │   ├── GridError                        the Grid could not deliver or collect messages
    │   ├── SimulationError                  the simulation runtime could not start or ended badly
    │   ├── AggregationError (ValueError)    replies could not be aggregated (shapes, all failed)
    │   └── DeployError                      the SuperLink, a SuperNode or the GrpcGrid failed
    │       └── TransferError                an object arrived damaged (checksum, size) or too large
    ├── DataError                            stored or received data is damaged: repair it
    │   ├── CodecError (ValueError)          bytes are not a valid Message (truncated, lying, huge)
    │   ├── HistoryError (ValueError)        a History was queried wrongly or given damaged JSON
    │   ├── CheckpointError                  a checkpoint is missing, damaged, or of another run
    │   └── BundleError                      an app bundle cannot be built, or was refused
    └── MissingDependencyError (ImportError) an optional package is missing: pip install it

Examples
--------
>>> from fedlab.errors import ConfigurationError, StrategyError
>>> from fedlab.strategy import FedAvg
>>> try:
...     FedAvg(fraction_train=2)
... except ConfigurationError as err:
...     print(type(err).__name__, err)
StrategyError fraction_train must be between 0 and 1, got 2.
"""

from __future__ import annotations

__all__ = [
    "AggregationError",
    "BundleError",
    "CheckpointError",
    "ClientAppError",
    "CodecError",
    "ConfigurationError",
    "DataError",
    "DatasetError",
    "DeployError",
    "FederationError",
    "FedlabError",
    "GridError",
    "HistoryError",
    "MessageError",
    "MissingDependencyError",
    "RecordError",
    "RunError",
    "ServerAppError",
    "SimulationError",
    "StrategyError",
    "TransferError",
]


class FedlabError(Exception):
    """Base class of every error raised by fedlab."""


# -- fix the configuration ---------------------------------------------------------------


class ConfigurationError(FedlabError, ValueError):
    """An argument, an app or a setting cannot work; the message says how to fix it.

    Raised before or as soon as the bad value is used, so nothing needs cleaning up: change
    the value and call again.
    """


class RecordError(ConfigurationError, TypeError):
    """A record was given a key or a value of a type it does not accept."""


class MessageError(ConfigurationError):
    """A Message was built or used incorrectly."""


class ClientAppError(ConfigurationError):
    """A ClientApp was set up incorrectly."""


class ServerAppError(ConfigurationError):
    """A ServerApp was set up incorrectly."""


class StrategyError(ConfigurationError):
    """A strategy was configured with values it cannot work with."""


class FederationError(ConfigurationError):
    """A Federation, a project or a deployment was configured with values it cannot work with."""


class DatasetError(ConfigurationError):
    """A federated dataset or a partitioner was configured or queried with values it cannot use."""


# -- retry or inspect the run ------------------------------------------------------------


class RunError(FedlabError):
    """Something failed while a federation ran: a runtime, a transport or the replies.

    The configuration may be right; the message says what failed (a client's error, a dead
    worker, an unreachable SuperLink). ``history.failures()`` lists every client failure.
    """


class GridError(RunError):
    """The Grid could not deliver messages or collect replies."""


class SimulationError(RunError):
    """The simulation runtime could not start or ended abnormally."""


class AggregationError(RunError, ValueError):
    """Replies could not be aggregated, e.g. because their arrays do not match or all failed."""


class DeployError(RunError):
    """The deployment runtime could not start, connect, or complete a request."""


class TransferError(DeployError):
    """An object (message content or bundle) arrived damaged or larger than allowed."""


# -- repair the data ---------------------------------------------------------------------


class DataError(FedlabError):
    """Stored or received data is damaged, or does not fit what it is used for."""


class CodecError(DataError, ValueError):
    """Bytes could not be decoded into a Message, or a Message could not be encoded."""


class HistoryError(DataError, ValueError):
    """A History was asked for something it does not hold, or given damaged JSON."""


class CheckpointError(DataError):
    """A checkpoint is missing or damaged, or does not match the federation resuming it."""


class BundleError(DataError):
    """An app bundle could not be built, or was refused when loaded (tampered or untrusted)."""


# -- install a package -------------------------------------------------------------------


class MissingDependencyError(FedlabError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package {package!r}, which is not installed. "
            f'Install it with: pip install "fedlab-sdk[{extra}]"'
        )
        self.package = package
        self.extra = extra
