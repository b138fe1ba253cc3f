"""The Control service: what the CLI and notebooks call (runs, nodes, events, logs).

Its client is :class:`~fedlab.deploy.client.ControlClient`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.bundle import check_new_run
from fedlab.deploy.superlink._serving import RunObjectCalls, abort, guarded, parse_config, run_proto
from fedlab.deploy.superlink.launcher import ServerAppLauncher
from fedlab.deploy.superlink.runs import RunRow
from fedlab.deploy.superlink.state import LinkState

__all__ = ["ControlServicer"]

#: A stream re-checks whether its reader is still there at least this often (seconds).
_POLL_S = 1.0


class ControlServicer(RunObjectCalls):
    """Serves the Control API from a :class:`LinkState`.

    GetRun, FinishRun, FindMissingObjects and PushObject (of bundles, up to
    ``max_bundle_size``) come from :class:`~fedlab.deploy.superlink._serving.RunObjectCalls`.
    """

    def __init__(
        self,
        state: LinkState,
        launcher: ServerAppLauncher,
        *,
        max_bundle_size: int,
        info: Callable[[], Any],
    ) -> None:
        self.state = state
        self.launcher = launcher
        self.max_bundle_size = self.upload_limit = max_bundle_size
        self._info = info

    def _run(self, run_id: int, context: Any) -> RunRow:
        run = self.state.runs.get(run_id)
        if run is None:
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"There is no run {run_id} on this SuperLink; list runs with `fedlab ls`.",
            )
        return run

    @guarded
    def CreateRun(self, request: Any, context: Any) -> Any:
        config = parse_config(request.run_config_json, "run config")
        digest, size = "", 0
        if request.HasField("bundle"):
            digest, size = request.bundle.digest, request.bundle.size
            if self.state.objects.size(digest) != size:
                abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Bundle {digest[:12]} ({size} bytes) has not been uploaded; push it first.",
                )
            check_new_run(b"".join(map(bytes, self.state.objects.read(digest, 0, 1 << 20))), config, used_digests={r.bundle_digest for r in self.state.runs.list()})  # fmt: skip
        elif not request.attached:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "A run the SuperLink starts itself (attached=False) needs a bundle with a ServerApp.",
            )
        run_id = self.state.runs.create(config, attached=request.attached, bundle_digest=digest, bundle_size=size)
        if not request.attached:
            self.launcher.launch(run_id)
        return pb.CreateRunResponse(run_id=run_id)

    @guarded
    def ListRuns(self, request: Any, context: Any) -> Any:
        return pb.ListRunsResponse(runs=[run_proto(r) for r in self.state.runs.list()])

    @guarded
    def ListNodes(self, request: Any, context: Any) -> Any:
        nodes = [
            pb.Node(node_id=n.node_id, node_config_json=json.dumps(n.node_config), online=n.online,
                    last_seen=n.last_seen)
            for n in self.state.nodes.list(include_offline=request.all)
        ]  # fmt: skip
        return pb.ListNodesResponse(nodes=nodes)

    @guarded
    def StreamEvents(self, request: Any, context: Any) -> Iterator[Any]:
        def batch(after: int) -> list[Any]:
            rows = self.state.journal.events(request.run_id, after)
            return [pb.EventRecord(seq=seq, event_json=body) for seq, body in rows]

        yield from self._stream(request, context, batch)

    @guarded
    def StreamLogs(self, request: Any, context: Any) -> Iterator[Any]:
        def batch(after: int) -> list[Any]:
            rows = self.state.journal.logs(request.run_id, after)
            return [pb.LogRecord(seq=seq, text=text, timestamp=ts) for seq, text, ts in rows]

        yield from self._stream(request, context, batch)

    def _stream(self, request: Any, context: Any, batch: Callable[[int], list[Any]]) -> Iterator[Any]:
        self._run(request.run_id, context)
        after = request.after_seq
        while context.is_active():
            # Read whether the run had finished *before* reading records, so that records
            # written just before it finished are never missed.
            finished = self._run(request.run_id, context).finished
            records = batch(after)
            yield from records
            if records:
                after = records[-1].seq
                continue
            if finished or not request.follow:
                return
            self.state.wait_until(partial(self._news, request.run_id, context, batch, after), _POLL_S,
                                  active=context.is_active)  # fmt: skip

    def _news(self, run_id: int, context: Any, batch: Callable[[int], list[Any]], after: int) -> bool:
        """True once records after ``after`` exist or the run has finished."""
        return bool(batch(after)) or self._run(run_id, context).finished

    @guarded
    def StopRun(self, request: Any, context: Any) -> Any:
        run = self._run(request.run_id, context)
        if not run.finished:
            run = self.state.runs.request_stop(run.run_id)
            if not run.attached:
                self.launcher.stop(run.run_id)
        return pb.StopRunResponse(run=run_proto(run))

    @guarded
    def GetInfo(self, request: Any, context: Any) -> Any:
        return self._info()
