"""The deployment artifacts (docker/, k8s/) are secure by default.

Neither Docker nor a cluster is available where the suite runs, so the files are checked
statically: the Dockerfiles and compose files are parsed, and the kustomize base is
rendered with Debian's ``kubectl kustomize`` and its YAML read. Every command line they
start a daemon with must turn TLS, node keys and trusted bundle keys on, keep Control and
ServerAppIo off the network, and parse with the daemons' own argument parsers; every
credential a daemon reads must be written by the step that makes them (compose) or be
projected from a Secret (Kubernetes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from fedlab.deploy.superlink.command import build_parser as superlink_parser
from fedlab.deploy.supernode.command import build_parser as supernode_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"

# The flags agreed for issue 13 (secure by default); the artifacts use these and no others.
SUPERLINK_FLAGS = {
    "--fleet-address", "--serverappio-address", "--control-address", "--state-dir",
    "--tls-cert", "--tls-key", "--node-keys", "--admin-token-file", "--trusted-key",
    "--audit-log", "--insecure", "--insecure-allow-unsigned",
}  # fmt: skip
SUPERNODE_FLAGS = {
    "--superlink", "--node-config", "--root-cert", "--node-key", "--trusted-key",
    "--insecure", "--insecure-allow-unsigned",
}  # fmt: skip
SWITCHES = {"--insecure", "--insecure-allow-unsigned"}
FLEET_PORT = "9092"


def options(argv: list[str]) -> dict[str, list[str]]:
    """``--flag value`` and ``--flag=value`` arguments by flag (switches get ``[""]``)."""
    found: dict[str, list[str]] = {}
    items = iter(argv)
    for item in items:
        assert item.startswith("--"), f"stray argument {item!r} in {argv}"
        flag, equals, value = item.partition("=")
        if not equals and flag not in SWITCHES:
            value = next(items)
        found.setdefault(flag, []).append(value)
    return found


def instruction(dockerfile: str, name: str) -> Any:
    """The JSON-array form of a Dockerfile instruction (continuation lines joined)."""
    (line,) = [ln for ln in joined(dockerfile).splitlines() if ln.startswith(name + " ")]
    return json.loads(line.removeprefix(name + " "))


def joined(dockerfile: str) -> str:
    return (DOCKER / dockerfile).read_text().replace("\\\n", " ")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DOCKER / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize k8s/base`` renders."""
    return kustomize(K8S / "base")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization with ``kubectl kustomize`` and parse its objects."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: apt-get install kubernetes-client (make test does)"
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def kind(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == name]


def component(objects: list[dict[str, Any]], workload: str, name: str) -> dict[str, Any]:
    (obj,) = [
        obj for obj in kind(objects, workload)
        if obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == name
    ]  # fmt: skip
    return obj


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def superlink_commands(objects: list[dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    yield "Dockerfile.superlink CMD", instruction("Dockerfile.superlink", "CMD")
    services = load("compose.yaml")["services"]
    yield (
        "compose superlink",
        services["superlink"].get("command", instruction("Dockerfile.superlink", "CMD")),
    )
    yield "k8s superlink", container(component(objects, "StatefulSet", "superlink"))["args"]


def supernode_commands(objects: list[dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    yield "Dockerfile.supernode CMD", instruction("Dockerfile.supernode", "CMD")
    for name, service in load("compose.yaml")["services"].items():
        if name.startswith("supernode"):
            yield f"compose {name}", service["command"]
    yield "k8s supernode", container(component(objects, "Deployment", "supernode"))["args"]


def test_every_superlink_uses_tls_node_keys_and_trusted_keys_and_keeps_control_on_loopback(
    rendered: list[dict[str, Any]],
) -> None:
    for where, argv in superlink_commands(rendered):
        opts = options(argv)
        assert set(opts) <= SUPERLINK_FLAGS, (where, set(opts) - SUPERLINK_FLAGS)
        assert not SWITCHES & set(opts), where
        for flag in ("--tls-cert", "--tls-key", "--node-keys", "--trusted-key", "--state-dir"):
            assert opts.get(flag), (where, flag)
        assert opts["--fleet-address"] == [f"0.0.0.0:{FLEET_PORT}"], where
        assert opts["--serverappio-address"] == ["127.0.0.1:9091"], where
        assert opts["--control-address"] == ["127.0.0.1:9093"], where


def test_every_supernode_trusts_the_ca_signs_with_its_node_key_and_runs_only_signed_code(
    rendered: list[dict[str, Any]],
) -> None:
    keys = []
    for where, argv in supernode_commands(rendered):
        opts = options(argv)
        assert set(opts) <= SUPERNODE_FLAGS, (where, set(opts) - SUPERNODE_FLAGS)
        assert not SWITCHES & set(opts), where
        for flag in ("--root-cert", "--node-key", "--trusted-key"):
            assert opts.get(flag), (where, flag)
        assert opts["--superlink"] == [f"superlink:{FLEET_PORT}"], where
        keys.append(opts["--node-key"][0])
    compose_keys = keys[1:-1]
    assert len(set(compose_keys)) == len(compose_keys) == 2  # one identity per SuperNode


def test_no_artifact_turns_security_off() -> None:
    files = [*DOCKER.iterdir(), *K8S.rglob("*.yaml")]
    for path in files:
        # Comments may document the opt-ins; what runs may not use them.
        text = "\n".join(
            ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")
        )
        assert "--insecure" not in text, path
        assert not re.search(r"(control|serverappio)-address[= ]+0\.0\.0\.0", text) or (
            path.name == "compose.host-access.yaml"
        ), path


def test_only_fleet_is_exposed_and_published(rendered: list[dict[str, Any]]) -> None:
    assert instruction_words("Dockerfile.superlink", "EXPOSE") == [[FLEET_PORT]]
    assert instruction_words("Dockerfile.supernode", "EXPOSE") == []
    services = load("compose.yaml")["services"]
    assert services["superlink"]["ports"] == [f"{FLEET_PORT}:{FLEET_PORT}"]
    assert [name for name, service in services.items() if "ports" in service] == ["superlink"]
    (service,) = kind(rendered, "Service")
    assert [port["port"] for port in service["spec"]["ports"]] == [int(FLEET_PORT)]
    assert service["spec"]["type"] == "ClusterIP"
    for workload in (*kind(rendered, "StatefulSet"), *kind(rendered, "Deployment")):
        ports = [p["containerPort"] for p in container(workload).get("ports", [])]
        assert ports in ([], [int(FLEET_PORT)])


def instruction_words(dockerfile: str, name: str) -> list[list[str]]:
    lines = joined(dockerfile).splitlines()
    return [ln.split()[1:] for ln in lines if ln.startswith(name + " ")]


def test_the_host_access_override_publishes_control_and_serverappio_on_loopback_only() -> None:
    (superlink,) = load("compose.host-access.yaml")["services"].values()
    opts = options(superlink["command"])
    assert not SWITCHES & set(opts)
    secure = options(instruction("Dockerfile.superlink", "CMD"))
    assert {k: v for k, v in opts.items() if not k.endswith("-address")} == {
        k: v for k, v in secure.items() if not k.endswith("-address")
    }
    for flag in ("--control-address", "--serverappio-address"):
        port = opts[flag][0].rpartition(":")[2]
        assert f"127.0.0.1:{port}:{port}" in superlink["ports"]
    assert all(port.startswith("127.0.0.1:") for port in superlink["ports"])
    # The `local-deployment` federation of every `fedlab new` project points there.
    template = (ROOT / "fedlab" / "templates" / "numpy" / "pyproject.toml.tmpl").read_text()
    control_port = opts["--control-address"][0].rpartition(":")[2]
    assert f'address = "127.0.0.1:{control_port}"' in template


def test_images_and_containers_run_unprivileged(rendered: list[dict[str, Any]]) -> None:
    for daemon in ("superlink", "supernode"):
        dockerfile = f"Dockerfile.{daemon}"
        assert instruction_words(dockerfile, "USER") == [["10001:10001"]]
        assert "useradd --create-home --uid 10001" in joined(dockerfile)
        assert instruction(dockerfile, "ENTRYPOINT") == ["fedlab", daemon]
        for source in re.findall(r"^COPY (.+) \S+$", joined(dockerfile), re.MULTILINE):
            assert all((ROOT / path).exists() for path in source.split()), source
        ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
        assert {"*", "!pyproject.toml", "!README.md", "!fedlab/"} <= set(ignore)
    for name, service in load("compose.yaml")["services"].items():
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for workload in (*kind(rendered, "StatefulSet"), *kind(rendered, "Deployment")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        context = container(workload)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}


def test_the_superlink_state_is_a_private_volume(rendered: list[dict[str, Any]]) -> None:
    state = options(instruction("Dockerfile.superlink", "CMD"))["--state-dir"][0]
    assert instruction("Dockerfile.superlink", "VOLUME") == [state]
    assert re.search(
        rf"install -d -m 0700 -o fedlab -g fedlab {state}\b", joined("Dockerfile.superlink")
    )
    assert f"superlink-state:{state}" in load("compose.yaml")["services"]["superlink"]["volumes"]
    statefulset = component(rendered, "StatefulSet", "superlink")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert statefulset["spec"]["replicas"] == 1  # one SQLite database
    (state_dir,) = options(container(statefulset)["args"])["--state-dir"]
    (mount,) = [
        m for m in container(statefulset)["volumeMounts"] if m["name"] == claim["metadata"]["name"]
    ]
    assert PurePosixPath(mount["mountPath"]) in PurePosixPath(state_dir).parents


def certs_init_outputs() -> tuple[set[str], str]:
    """The files compose's certs-init writes into /certs, and its script."""
    (script,) = load("compose.yaml")["services"]["certs-init"]["command"]
    written: set[str] = set()
    for line in script.splitlines():
        words = shlex.split(line.partition("||")[2] or line)
        if words[:2] == ["fedlab", "certs"]:
            written |= {f"{words[2]}/{n}" for n in ("ca.pem", "ca.key", "server.pem", "server.key")}
        elif words[:2] == ["fedlab", "keys"]:
            written |= {f"{words[2]}.key", f"{words[2]}.pub"}
        elif ">" in words:
            written.add(words[words.index(">") + 1])
    return written, script


def test_compose_makes_every_credential_before_the_daemons_start() -> None:
    services = load("compose.yaml")["services"]
    assert sorted(services) == ["certs-init", "superlink", "supernode-0", "supernode-1"]
    assert services["certs-init"]["restart"] == "no"
    written, script = certs_init_outputs()
    assert "fedlab certs /certs --host superlink" in script  # the name SuperNodes dial
    admitted = re.search(r"cat (.+) > /certs/node-keys", script)
    assert admitted is not None
    read = options(services["superlink"].get("command", instruction("Dockerfile.superlink", "CMD")))
    for flag in ("--tls-cert", "--tls-key", "--node-keys", "--trusted-key"):
        assert set(read[flag]) <= written, flag
    partitions = []
    for name in ("supernode-0", "supernode-1"):
        service = services[name]
        assert service["depends_on"] == {
            "certs-init": {"condition": "service_completed_successfully"},
            "superlink": {"condition": "service_healthy"},
        }
        assert "certs:/certs:ro" in service["volumes"]
        opts = options(service["command"])
        for flag in ("--root-cert", "--node-key", "--trusted-key"):
            assert set(opts[flag]) <= written, (name, flag)
        # Its key is on the allow-list.
        assert opts["--node-key"][0].replace(".key", ".pub") in admitted.group(1).split()
        partitions.append(opts["--node-config"])
    assert partitions == [["partition-id=0 num-partitions=2"], ["partition-id=1 num-partitions=2"]]
    assert services["superlink"]["depends_on"] == {
        "certs-init": {"condition": "service_completed_successfully"}
    }
    assert "certs:/certs:ro" in services["superlink"]["volumes"]


def test_every_credential_a_pod_reads_is_projected_from_a_secret(
    rendered: list[dict[str, Any]],
) -> None:
    secrets = {s["metadata"]["name"]: set(s["data"]) for s in kind(rendered, "Secret")}
    for workload, name, flags in (
        ("StatefulSet", "superlink", ("--tls-cert", "--tls-key", "--node-keys", "--trusted-key")),
        ("Deployment", "supernode", ("--root-cert", "--node-key", "--trusted-key")),
    ):
        obj = component(rendered, workload, name)
        mounted: dict[str, set[str]] = {}
        for volume in obj["spec"]["template"]["spec"]["volumes"]:
            for source in volume.get("projected", {}).get("sources", []):
                secret = source["secret"]
                keys = (
                    {i["path"] for i in secret["items"]}
                    if "items" in secret
                    else secrets[secret["name"]]
                )
                mounted.setdefault(volume["name"], set()).update(keys)
        files = {
            f"{m['mountPath']}/{key}"
            for m in container(obj)["volumeMounts"] if m["name"] in mounted
            for key in mounted[m["name"]]
        }  # fmt: skip
        opts = options(container(obj)["args"])
        for flag in flags:
            assert set(opts[flag]) <= files, (name, flag, files)
    # A SuperNode never sees the SuperLink's private key.
    supernode = component(rendered, "Deployment", "supernode")
    assert "superlink-tls" not in json.dumps(supernode)


def test_network_policies_let_in_only_fleet_and_let_supernodes_out_only_to_it(
    rendered: list[dict[str, Any]],
) -> None:
    policies = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p["spec"]
                for p in kind(rendered, "NetworkPolicy")}  # fmt: skip
    superlink_labels = component(rendered, "StatefulSet", "superlink")["spec"]["template"][
        "metadata"
    ]["labels"]
    link = policies["superlink"]
    assert link["podSelector"]["matchLabels"].items() <= superlink_labels.items()
    assert set(link["policyTypes"]) == {"Ingress", "Egress"}
    assert [port for rule in link["ingress"] for port in rule["ports"]] == [
        {"protocol": "TCP", "port": int(FLEET_PORT)}
    ]
    node = policies["supernode"]
    assert set(node["policyTypes"]) == {"Ingress", "Egress"} and not node.get("ingress")
    for rule in node["egress"]:
        ports = {port["port"] for port in rule["ports"]}
        if ports == {int(FLEET_PORT)}:
            (peer,) = rule["to"]
            assert peer["podSelector"]["matchLabels"].items() <= superlink_labels.items()
        else:
            assert ports == {53}  # DNS


def test_the_base_holds_placeholders_and_real_credentials_stay_out_of_git(tmp_path: Path) -> None:
    for path in (K8S / "base" / "secrets").iterdir():
        assert path.read_text().startswith("PLACEHOLDER, not a key"), path
    overlay = K8S / "overlays" / "example"
    assert (overlay / "secrets" / ".gitignore").read_text().splitlines()[1:] == ["*", "!.gitignore"]
    shutil.copytree(K8S, tmp_path / "k8s")
    names = ("server.pem", "server.key", "ca.pem", "node-keys", "signer.pub", "node.key")
    for name in names:
        (tmp_path / "k8s" / "overlays" / "example" / "secrets" / name).write_text(f"real {name}\n")
    objects = kustomize(tmp_path / "k8s" / "overlays" / "example")
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert namespaces == {"fedlab"}
    # The overlay's files replaced every placeholder.
    assert "PLACEHOLDER" not in json.dumps(objects)
    data = {key: value for s in kind(objects, "Secret") for key, value in s["data"].items()}
    assert sorted(data) == sorted(names)


def readme_commands() -> list[list[str]]:
    """The ``fedlab`` command lines of the README's "Security model" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Security model\n") :]
    section = section[: section.index("\n## ", 1)]
    lines = [
        line.split("#")[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
    ]
    return [shlex.split(line) for line in lines if line]


def test_the_readme_federation_of_two_organisations_uses_every_protection() -> None:
    commands = readme_commands()
    assert [words[1] for words in commands] == [
        "certs", "keys", "superlink", "keys", "node", "supernode", "run", "user"
    ]  # fmt: skip
    for words in commands:
        opts = options(words[2:]) if words[1] in ("superlink", "supernode") else {}
        assert not SWITCHES & set(words), words
        if words[1] == "superlink":
            assert set(opts) <= SUPERLINK_FLAGS
            assert {"--tls-cert", "--tls-key", "--trusted-key"} <= set(opts)
        elif words[1] == "supernode":
            assert set(opts) <= SUPERNODE_FLAGS
            assert {"--root-cert", "--node-key", "--trusted-key"} <= set(opts)
            assert opts["--superlink"][0].endswith(f":{FLEET_PORT}")
        elif "--superlink" in words:  # a client of the Control API, on A's loopback
            assert words[words.index("--superlink") + 1] == "127.0.0.1:9093"
            assert "--root-cert" in words and "--token-file" in words
    (run,) = [words for words in commands if words[1] == "run"]
    assert "--signing-key" in run


# The two tests below use the daemons' real parsers and `fedlab certs` / `fedlab keys`:
# they hold the artifacts to the code, not only to the agreed flag list above.


def test_every_artifact_command_line_parses_with_the_daemons_own_parsers(
    rendered: list[dict[str, Any]],
) -> None:
    host_access = load("compose.host-access.yaml")["services"]["superlink"]["command"]
    readme = {words[1]: words[2:] for words in readme_commands()}
    superlinks = [
        *superlink_commands(rendered),
        ("compose.host-access", host_access),
        ("README", readme["superlink"]),
    ]
    supernodes = [*supernode_commands(rendered), ("README", readme["supernode"])]
    for parser, found in ((superlink_parser, superlinks), (supernode_parser, supernodes)):
        for where, argv in found:
            args = vars(parser().parse_args(argv))
            for flag, values in options(argv).items():
                dest = flag.removeprefix("--").replace("-", "_")
                assert args[dest] in (values, values[0]), (where, flag, args[dest])


def test_the_certs_init_script_writes_every_file_the_daemons_read(tmp_path: Path) -> None:
    written, script = certs_init_outputs()
    certs = tmp_path / "certs"
    certs.mkdir(mode=0o700)
    shim = tmp_path / "bin" / "fedlab"
    shim.parent.mkdir()
    entry = "import sys; from fedlab.cli.main import main; sys.exit(main())"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{entry}" "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    local = script.replace("/certs", str(certs))
    for attempt in range(2):  # a second start keeps what the first one made
        out = subprocess.run(
            ["sh", "-c", local], check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        if attempt == 0:
            first = {p.name: p.read_bytes() for p in certs.iterdir()}
    assert {p.name: p.read_bytes() for p in certs.iterdir()} == first
    assert {f"/certs/{name}" for name in first} >= written
    for name in first:
        if name.endswith(".key"):
            assert (certs / name).stat().st_mode & 0o077 == 0, name
    assert (certs / "node-keys").read_text().count("ssh-ed25519 ") == 2
