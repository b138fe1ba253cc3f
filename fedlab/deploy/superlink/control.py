"""The Control service: what the CLI and notebooks call (runs, nodes, events, logs).

Its client is :class:`~fedlab.deploy.client.ControlClient`. Every call is made by a user
(a token; :mod:`fedlab.deploy.security.access` says who may do what): an admin does
everything, a user starts runs and sees and stops only its own, a reader reads every run
and changes nothing. Keys and users are managed by admins only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.security.access import USER, Caller, caller_of
from fedlab.deploy.security.audit import AuditLog
from fedlab.deploy.bundle import check_new_run
from fedlab.deploy.superlink._serving import RunObjectCalls, abort, guarded, parse_config, run_proto
from fedlab.deploy.superlink.credentials import Credentials, new_token
from fedlab.deploy.superlink.launcher import ServerAppLauncher
from fedlab.deploy.superlink.runs import RunRow
from fedlab.deploy.superlink.state import LinkState
from fedlab.errors import DeployError

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
        credentials: Credentials,
        audit: AuditLog,
    ) -> None:
        self.state = state
        self.launcher = launcher
        self.max_bundle_size = self.upload_limit = max_bundle_size
        self._info = info
        self.credentials = credentials
        self.audit = audit

    def _allow(self, context: Any, allowed: bool, what: str) -> Caller:
        """The caller, if ``allowed``; else the call ends with PERMISSION_DENIED (audited)."""
        caller = caller_of(context)
        if not allowed:
            self.audit.record("permission.denied", caller.describe(), api="control", what=what)
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"{caller.describe()} ({caller.role or 'no role'}) may not {what}; ask an admin of "
                  "this SuperLink for the right role.")  # fmt: skip
        return caller

    def _run(self, run_id: int, context: Any, *, change: bool = False) -> RunRow:
        run = self.state.runs.get(run_id)
        caller = caller_of(context)
        owner = self.credentials.run_owner(run_id)
        if run is None or not (caller.owns(owner) if change else caller.reads(owner)):
            if run is not None:
                self.audit.record("permission.denied", caller.describe(), api="control", run_id=run_id)
            if caller.is_admin:
                abort(context, grpc.StatusCode.NOT_FOUND,
                      f"There is no run {run_id} on this SuperLink; list runs with `fedlab ls`.")  # fmt: skip
            # The same answer whether the run exists or not: run ids of others do not leak.
            abort(context, grpc.StatusCode.PERMISSION_DENIED,
                  f"There is no run {run_id} on this SuperLink that you may {'change' if change else 'see'}; "
                  "list yours with `fedlab ls`.")  # fmt: skip
        return run

    def _caller_may_start(self, context: Any) -> Caller:
        caller = caller_of(context)
        return self._allow(context, caller.is_admin or caller.role == USER, "start runs or upload bundles")

    @guarded
    def CreateRun(self, request: Any, context: Any) -> Any:
        caller = self._caller_may_start(context)
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
            bundle = b"".join(map(bytes, self.state.objects.read(digest, 0, 1 << 20)))
            try:
                check_new_run(bundle, config, used_digests={r.bundle_digest for r in self.state.runs.list()})
            except DeployError as err:
                self.audit.record("bundle.refused", caller.describe(), bundle=digest, reason=str(err))
                raise
        elif not request.attached:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "A run the SuperLink starts itself (attached=False) needs a bundle with a ServerApp.",
            )
        run_id = self.state.runs.create(config, attached=request.attached, bundle_digest=digest, bundle_size=size)
        owner = caller.name if caller.kind == "user" else ""
        token = None if request.attached else new_token()
        self.credentials.set_run_access(run_id, owner, token)
        self.audit.record("run.created", caller.describe(), run_id=run_id, attached=request.attached,
                          bundle=digest, run_config=config)  # fmt: skip
        if not request.attached:
            self.launcher.launch(run_id, token)
        return pb.CreateRunResponse(run_id=run_id)

    @guarded
    def GetRun(self, request: Any, context: Any) -> Any:
        return self._proto(self._run(request.run_id, context))

    @guarded
    def FinishRun(self, request: Any, context: Any) -> Any:
        caller = caller_of(context)
        self._run(request.run_id, context, change=True)
        run = self.state.finish_run(request.run_id, request.status, request.error)
        self.audit.record("run.finished", caller.describe(), run_id=run.run_id, status=run.status)
        return pb.FinishRunResponse(run=self._proto(run))

    @guarded
    def FindMissingObjects(self, request: Any, context: Any) -> Any:
        self._caller_may_start(context)
        return super().FindMissingObjects(request, context)

    @guarded
    def PushObject(self, request_iterator: Any, context: Any) -> Any:
        self._caller_may_start(context)
        return super().PushObject(request_iterator, context)

    def _proto(self, run: RunRow) -> Any:
        message = run_proto(run)
        message.owner = self.credentials.run_owner(run.run_id)
        return message

    @guarded
    def ListRuns(self, request: Any, context: Any) -> Any:
        caller = caller_of(context)
        runs = [r for r in self.state.runs.list() if caller.reads(self.credentials.run_owner(r.run_id))]
        return pb.ListRunsResponse(runs=[self._proto(r) for r in runs])

    @guarded
    def ListNodes(self, request: Any, context: Any) -> Any:
        self._allow(context, caller_of(context).kind in ("user", "open"), "list nodes")
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
        run = self._run(request.run_id, context, change=True)
        if not run.finished:
            run = self.state.runs.request_stop(run.run_id)
            self.audit.record("run.stop_requested", caller_of(context).describe(), run_id=run.run_id)
            if not run.attached:
                self.launcher.stop(run.run_id)
        return pb.StopRunResponse(run=self._proto(run))

    @guarded
    def GetInfo(self, request: Any, context: Any) -> Any:
        return self._info()

    @guarded
    def WhoAmI(self, request: Any, context: Any) -> Any:
        caller = caller_of(context)
        return pb.User(name=caller.name, role=caller.role)

    # --- admin: node keys and users ------------------------------------------------------

    def _admin(self, context: Any, what: str) -> Caller:
        return self._allow(context, caller_of(context).is_admin, what)

    @guarded
    def AddNodeKey(self, request: Any, context: Any) -> Any:
        caller = self._admin(context, "add node keys")
        row = self.credentials.add_node_key(request.public_key, request.comment)
        self.audit.record("node.key_added", caller.describe(), fingerprint=row.fingerprint, comment=row.comment)
        return pb.NodeKey(public_key=row.line, fingerprint=row.fingerprint, comment=row.comment,
                          added_at=row.added_at, from_file=row.from_file)  # fmt: skip

    @guarded
    def RemoveNodeKey(self, request: Any, context: Any) -> Any:
        caller = self._admin(context, "remove node keys")
        removed = self.credentials.remove_node_key(request.fingerprint)
        self.audit.record("node.key_removed", caller.describe(), fingerprint=request.fingerprint, removed=removed)
        return pb.RemoveNodeKeyResponse(removed=removed)

    @guarded
    def ListNodeKeys(self, request: Any, context: Any) -> Any:
        self._admin(context, "list node keys")
        keys = [pb.NodeKey(public_key=r.line, fingerprint=r.fingerprint, comment=r.comment, added_at=r.added_at,
                           from_file=r.from_file) for r in self.credentials.node_keys()]  # fmt: skip
        return pb.ListNodeKeysResponse(keys=keys)

    @guarded
    def AddUser(self, request: Any, context: Any) -> Any:
        caller = self._admin(context, "add users")
        row, token = self.credentials.add_user(request.name, request.role)
        self.audit.record("user.added", caller.describe(), name=row.name, role=row.role)
        return pb.AddUserResponse(user=pb.User(name=row.name, role=row.role, created_at=row.created_at), token=token)

    @guarded
    def RemoveUser(self, request: Any, context: Any) -> Any:
        caller = self._admin(context, "remove users")
        removed = self.credentials.remove_user(request.name)
        self.audit.record("user.removed", caller.describe(), name=request.name, removed=removed)
        return pb.RemoveUserResponse(removed=removed)

    @guarded
    def ListUsers(self, request: Any, context: Any) -> Any:
        self._admin(context, "list users")
        users = [pb.User(name=u.name, role=u.role, created_at=u.created_at) for u in self.credentials.users()]
        return pb.ListUsersResponse(users=users)
