"""The container files start the daemons with arguments they accept.

The Docker engine and the compose plugin are not installed where the suite runs, so
`docker compose config` cannot be used here; these tests check what it would not: that
every command line in the Dockerfiles and compose.yaml parses with fedlab's own parsers,
that the services find each other, and that the host reaches the published APIs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedlab.cli.main import main
from fedlab.deploy.superlink.command import build_parser as superlink_parser
from fedlab.deploy.supernode.command import build_parser as supernode_parser

DOCKER = Path(__file__).resolve().parents[3] / "docker"


def instruction(dockerfile: str, name: str) -> Any:
    """The JSON-array form of a Dockerfile instruction (continuation lines joined)."""
    text = (DOCKER / dockerfile).read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return json.loads(line.removeprefix(name + " "))


def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("daemon", "parser"), [("superlink", superlink_parser), ("supernode", supernode_parser)]
)
def test_each_image_runs_its_daemon_with_a_default_command_it_accepts(
    daemon: str, parser: Any
) -> None:
    dockerfile = f"Dockerfile.{daemon}"
    assert instruction(dockerfile, "ENTRYPOINT") == ["fedlab", daemon]
    args = parser().parse_args(instruction(dockerfile, "CMD"))
    assert args.insecure  # explicit, as the daemons require until TLS lands
    for source in re.findall(r"^COPY (.+) \S+$", (DOCKER / dockerfile).read_text(), re.MULTILINE):
        for path in source.split():
            assert (DOCKER.parent / path).exists(), path
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
    assert {"!pyproject.toml", "!README.md", "!fedlab/"} <= set(ignore)


def test_compose_runs_one_superlink_and_two_supernodes_that_reach_it() -> None:
    services = compose()["services"]
    assert sorted(services) == ["superlink", "supernode-0", "supernode-1"]
    superlink = superlink_parser().parse_args(instruction("Dockerfile.superlink", "CMD"))
    fleet_port = superlink.fleet_address.rpartition(":")[2]
    partitions = []
    for name in ("supernode-0", "supernode-1"):
        service = services[name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile.supernode"
        assert service["depends_on"] == ["superlink"]
        args = supernode_parser().parse_args(service["command"])
        assert args.superlink == f"superlink:{fleet_port}" and args.insecure
        partitions.append(args.node_config)
    assert partitions == ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]
    assert services["superlink"]["build"]["dockerfile"] == "docker/Dockerfile.superlink"
    for relative in (s["build"]["dockerfile"] for s in services.values()):
        assert (DOCKER.parent / relative).exists()


def test_the_host_reaches_the_published_control_and_serverappio_apis() -> None:
    superlink = superlink_parser().parse_args(instruction("Dockerfile.superlink", "CMD"))
    published = set(compose()["services"]["superlink"]["ports"])
    for address in (superlink.control_address, superlink.serverappio_address):
        port = address.rpartition(":")[2]
        assert f"127.0.0.1:{port}:{port}" in published
    # The `local-deployment` federation of every `fedlab new` project points there.
    template = (
        DOCKER.parent / "fedlab" / "templates" / "numpy" / "pyproject.toml.tmpl"
    ).read_text()
    assert f'address = "127.0.0.1:{superlink.control_address.rpartition(":")[2]}"' in template


@pytest.mark.parametrize("daemon", ["superlink", "supernode"])
def test_the_cli_hands_daemon_arguments_to_the_daemon(
    daemon: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([daemon, "--help"])
    assert exit_.value.code == 0
    assert "--insecure" in capsys.readouterr().out
