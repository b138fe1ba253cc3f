"""``fedlab certs``, ``fedlab keys``, ``fedlab node`` and ``fedlab user``: a deployment's credentials.

``certs`` and ``keys`` write files here; ``node`` and ``user`` ask a running SuperLink
(an admin's token) to change who it admits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedlab.cli._output import Output, add_format_option
from fedlab.cli._target import add_target_arguments, control_client

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certs``, ``keys``, ``node`` and ``user`` to the CLI."""
    certs = commands.add_parser(
        "certs", help="make a development CA and SuperLink certificate",
        description="Write DIR/ca.pem, ca.key, server.pem and server.key (keys 0600): a throwaway "
        "certificate authority and a SuperLink certificate for localhost, 127.0.0.1, ::1 and "
        "each --host. For tutorials and tests; use your own CA's certificates in production.",
    )  # fmt: skip
    certs.add_argument("directory", help="where to write the four files")
    certs.add_argument("--host", action="append", default=[], help="another name or address of the SuperLink")
    certs.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    certs.add_argument("--force", action="store_true", help="replace files that exist")
    add_format_option(certs)
    certs.set_defaults(handler=_certs)

    keys = commands.add_parser(
        "keys", help="make an Ed25519 key pair (a SuperNode's, or a bundle signer's)",
        description="Write NAME.key (private, PEM, 0600) and NAME.pub (one OpenSSH line). A SuperNode "
        "uses NAME.key with --node-key and its operator adds NAME.pub with `fedlab node add`; a "
        "bundle signer uses NAME.key with --signing-key and SuperNodes trust NAME.pub (--trusted-key).",
    )  # fmt: skip
    keys.add_argument("name", help="path and name of the pair, without extension")
    keys.add_argument("--force", action="store_true", help="replace files that exist")
    add_format_option(keys)
    keys.set_defaults(handler=_keys)

    node = commands.add_parser("node", help="allow, remove or list SuperNode keys on a SuperLink (admin)")
    node_actions = node.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = node_actions.add_parser("add", help="admit a SuperNode's public key")
    add.add_argument("key_file", help="the node's NAME.pub (from `fedlab keys`)")
    remove = node_actions.add_parser("remove", help="refuse a key from now on")
    remove.add_argument("fingerprint", help="the key's fingerprint, as `fedlab node ls` shows it")
    listing = node_actions.add_parser("ls", help="list the admitted keys")
    for sub in (add, remove, listing):
        add_target_arguments(sub)
        add_format_option(sub)
        sub.set_defaults(handler=_node)

    user = commands.add_parser("user", help="add, remove or list Control API users (admin)")
    user_actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = user_actions.add_parser("add", help="add a user and print its token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=["admin", "user", "reader"], default="user",
                     help="admin: everything; user: start runs, see and stop its own; reader: read every run")  # fmt: skip
    remove = user_actions.add_parser("remove", help="remove a user; its token stops working")
    remove.add_argument("name")
    listing = user_actions.add_parser("ls", help="list users and roles")
    for sub in (add, remove, listing):
        add_target_arguments(sub)
        add_format_option(sub)
        sub.set_defaults(handler=_user)


def _certs(args: argparse.Namespace) -> int:
    from fedlab.deploy.security.tls import make_dev_certs

    out = Output(args.format)
    paths = make_dev_certs(args.directory, args.host, days=args.days, overwrite=args.force)
    files = {role: str(path) for role, path in vars(paths).items()}
    out.document({"success": True, **files})
    out.say(
        f"Wrote {paths.ca_cert} (trust it: --root-cert), {paths.server_cert} and {paths.server_key} "
        f"(the SuperLink's --tls-cert/--tls-key) and {paths.ca_key} (keep it private)."
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from fedlab.deploy.security.keys import write_key_pair

    out = Output(args.format)
    private, public = write_key_pair(Path(args.name), overwrite=args.force)
    out.document({"success": True, "private": str(private), "public": str(public)})
    out.say(f"Wrote {private} (private, keep it on its machine) and {public} (give it to the other side).")
    return 0


def _node(args: argparse.Namespace) -> int:
    out = Output(args.format)
    with control_client(args) as control:
        if args.action == "add":
            text = Path(args.key_file).read_text()
            fingerprint = control.add_node_key(text.strip())
            out.document({"success": True, "fingerprint": fingerprint})
            out.say(f"SuperNodes with key [bold]{fingerprint}[/] are admitted from now on.")
        elif args.action == "remove":
            removed = control.remove_node_key(args.fingerprint)
            out.document({"success": removed, "fingerprint": args.fingerprint})
            if not removed:
                return out.error(f"No admitted key has fingerprint {args.fingerprint}; see `fedlab node ls`.")
            out.say(f"Key {args.fingerprint} is refused from now on.")
        else:
            keys = control.list_node_keys()
            out.document({"success": True, "keys": [
                {"fingerprint": k.fingerprint, "comment": k.comment, "from_file": k.from_file} for k in keys
            ]})  # fmt: skip
            rows: list[list[object]] = [[k.fingerprint, k.comment, "--node-keys" if k.from_file else "added"]
                                        for k in keys]  # fmt: skip
            out.table(["fingerprint", "comment", "source"], rows, title="Admitted SuperNode keys")
    return 0


def _user(args: argparse.Namespace) -> int:
    out = Output(args.format)
    with control_client(args) as control:
        if args.action == "add":
            token = control.add_user(args.name, args.role)
            out.document({"success": True, "name": args.name, "role": args.role, "token": token})
            out.say(f"User [bold]{args.name}[/] ({args.role}); its token, shown only now:")
            out.say(token)
        elif args.action == "remove":
            removed = control.remove_user(args.name)
            out.document({"success": removed, "name": args.name})
            if not removed:
                return out.error(f"There is no user {args.name!r}; see `fedlab user ls`.")
            out.say(f"User {args.name} removed; its token no longer works.")
        else:
            users = control.list_users()
            out.document({"success": True, "users": [{"name": n, "role": r} for n, r in users]})
            out.table(["name", "role"], [[n, r] for n, r in users], title="Control API users")
    return 0
