"""`fedlab superlink` and `fedlab supernode` speak of themselves by the command the user typed."""

from __future__ import annotations

import pytest

from fedlab.cli.main import main


@pytest.mark.parametrize("daemon", ["superlink", "supernode"])
def test_help_shows_the_fedlab_command_in_its_usage(
    daemon: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([daemon, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fedlab {daemon} [-h]")
    assert "python -m" not in out


@pytest.mark.parametrize("daemon", ["superlink", "supernode"])
def test_a_bad_option_is_reported_under_the_fedlab_command(
    daemon: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([daemon, "--no-such-option"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: fedlab {daemon} [-h]")
    assert err.endswith(f"fedlab {daemon}: error: unrecognized arguments: --no-such-option\n")
