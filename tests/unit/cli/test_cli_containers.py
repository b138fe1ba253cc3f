"""The container images start the daemons through the ``fedlab`` command.

Their ENTRYPOINT is ``fedlab superlink`` / ``fedlab supernode``, so the command must hand
every daemon argument on unchanged. What the images, compose files and Kubernetes manifests
pass is checked in tests/unit/test_deploy_artifacts.py.
"""

from __future__ import annotations

import pytest

from fedlab.cli.main import main


@pytest.mark.parametrize("daemon", ["superlink", "supernode"])
def test_the_cli_hands_daemon_arguments_to_the_daemon(
    daemon: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([daemon, "--help"])
    assert exit_.value.code == 0
    assert "--insecure" in capsys.readouterr().out
