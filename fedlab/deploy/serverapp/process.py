"""The process a SuperLink starts to drive one run: load the bundle, run its ServerApp.

``python -m fedlab.deploy.serverapp --serverappio ADDR --run-id N --root-cert CA`` fetches run
N's bundle through the ServerAppIo API, checks it, builds a
:class:`~fedlab.deploy.client.grpcgrid.GrpcGrid` and calls the bundle's ServerApp with it. The
grid forwards every event to the SuperLink; the process reports how the run ended before
it exits (0 if the ServerApp returned, 1 if it raised).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence

from fedlab.context import Context
from fedlab.deploy import proto as pb
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.security.settings import RUN_TOKEN_ENV, ClientSecurity
from fedlab.deploy.serverapp._output import survive_lost_reader
from fedlab.errors import DeployError, FedlabError
from fedlab.events import Event, RoundAggregated, RunFinished, RunStarted
from fedlab.server import Result

__all__ = ["main", "serve_run"]

_log = logging.getLogger("fedlab.serverapp")


def serve_run(grid: GrpcGrid) -> tuple[str, str]:
    """Run the bundle of ``grid``'s run; return (status, error) for the SuperLink.

    Emits RunStarted and RunFinished around the ServerApp, as a Federation does.
    """
    from fedlab.deploy.bundle import load_bundle

    rounds: set[int] = set()

    def count(event: Event) -> None:
        if isinstance(event, RoundAggregated):
            rounds.add(event.round)

    grid.events.subscribe(count)
    started = time.perf_counter()
    status, error, completed = "failed", "", 0
    try:
        run = grid.run_info()
        if not run.bundle_digest:
            raise DeployError(f"Run {run.run_id} has no bundle, so there is no ServerApp to run.")
        bundle = load_bundle(grid.fetch_object(pb.ObjectRef(digest=run.bundle_digest, size=run.bundle_size)))
        server_app = bundle.server_app()
        if server_app is None:
            raise DeployError(
                f"The bundle of run {run.run_id} has no ServerApp; build it with "
                "build_bundle(client_app, server_app), or drive the run yourself (attached=True)."
            )
        run_config = {**bundle.run_config, **run.run_config}
        context = Context(run_id=run.run_id, node_id=0, run_config=run_config)
        grid.events.emit(
            RunStarted(
                run_id=run.run_id,
                num_rounds=_int(run_config.get("num-server-rounds")),
                node_ids=tuple(grid.get_node_ids()),
                strategy=type(server_app).__name__,
                config=run_config,
            )
        )
        returned = server_app(grid, context)
        completed = returned.rounds_completed if isinstance(returned, Result) else len(rounds)
        status = "completed"
    except BaseException as exc:  # reported to the SuperLink, then the process exits 1
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        traceback.print_exc()
        completed = len(rounds)
    grid.events.emit(
        RunFinished(
            run_id=grid.run_id,
            rounds_completed=completed,
            duration_s=time.perf_counter() - started,
            stopped_early=grid.stop_requested,
            error=error or None,
        )
    )
    return status, error


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Drive one run for a SuperLink; return 0 if its ServerApp returned, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m fedlab.deploy.serverapp",
        description="Run the ServerApp of one run (the SuperLink starts this itself).",
    )
    parser.add_argument("--serverappio", required=True, help="the SuperLink's ServerAppIo API, HOST:PORT")
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--insecure", action="store_true", help="connect without TLS (an --insecure SuperLink)")
    parser.add_argument("--root-cert", help="the CA certificate the SuperLink's certificate is checked against")
    parser.add_argument("--tls-name", help="the name the SuperLink's certificate carries, if not the address")
    args = parser.parse_args(argv)
    survive_lost_reader()  # the SuperLink reading our output may crash and come back
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        security = ClientSecurity.from_options(insecure=args.insecure, root_cert=args.root_cert,
                                               token=os.environ.pop(RUN_TOKEN_ENV, None))  # fmt: skip
    except FedlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.tls_name and not security.insecure:
        security = dataclasses.replace(security, target_name=args.tls_name)
    grid = GrpcGrid(args.serverappio, args.run_id, security=security)
    try:
        status, error = serve_run(grid)
        grid.finish_run(status, error)
    finally:
        grid.close()
    _log.info("Run %d %s", args.run_id, status)
    return 0 if status == "completed" else 1
