"""`--run-config` in Flower's syntax: space-separated key=value pairs with TOML values, or a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlab.cli._run_config import parse_run_config
from fedlab.errors import FederationError


def test_one_value_holds_several_space_separated_pairs() -> None:
    assert parse_run_config(["num-server-rounds=2 learning-rate=0.05"]) == {
        "num-server-rounds": 2,
        "learning-rate": 0.05,
    }


def test_a_learning_rate_followed_by_another_pair_stays_a_float() -> None:
    config = parse_run_config(["learning-rate=0.05 batch-size=16"])
    assert config == {"learning-rate": 0.05, "batch-size": 16}
    assert type(config["learning-rate"]) is float and type(config["batch-size"]) is int


def test_values_are_typed_like_toml_and_quoted_strings_keep_their_spaces() -> None:
    assert parse_run_config(['a=1 b=0.5 c=true d="x y" e=\'it is\' f="" g=-3e2']) == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "x y",
        "e": "it is",
        "f": "",
        "g": -300.0,
    }


def test_repeated_values_merge_and_later_ones_win() -> None:
    assert parse_run_config(["lr=0.1 rounds=3", "lr=0.2", 'name="a=b"']) == {
        "lr": 0.2,
        "rounds": 3,
        "name": "a=b",
    }


def test_dotted_keys_and_inline_tables_flatten_to_dotted_names() -> None:
    assert parse_run_config(['optimizer.lr=0.01 model={depth=2,act="relu"}']) == {
        "optimizer.lr": 0.01,
        "model.depth": 2,
        "model.act": "relu",
    }


def test_a_toml_file_gives_its_values_with_nested_tables_flattened(tmp_path: Path) -> None:
    (tmp_path / "overrides.toml").write_text(
        'num-server-rounds = 4\nname = "exp 1"\n[optimizer]\nlr = 0.01\n'
    )
    assert parse_run_config(["overrides.toml", "num-server-rounds=5"], tmp_path) == {
        "num-server-rounds": 5,
        "name": "exp 1",
        "optimizer.lr": 0.01,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "learning-rate=fast",
            (
                "--run-config learning-rate=fast: 'fast' is not a TOML value. Numbers and true/false "
                'are written bare, strings in double quotes: learning-rate="fast" (in a shell, quote '
                "the whole pair: 'learning-rate=\"fast\"')."
            ),
        ),
        (
            "f=",
            (
                "--run-config f=: '' is not a TOML value. Numbers and true/false are written bare, "
                'strings in double quotes: f="" (in a shell, quote the whole pair: \'f=""\').'
            ),
        ),
        (
            'name="open',
            (
                "--run-config name=\"open: '\"open' is not a TOML value. Numbers and true/false are "
                "written bare, close the quotes, and escape quotes inside with a backslash."
            ),
        ),
        (
            "num-server-rounds=2 junk",
            (
                "--run-config takes key=value pairs separated by spaces (or a .toml file), got "
                "'junk' in 'num-server-rounds=2 junk'; e.g. --run-config "
                '"num-server-rounds=5 learning-rate=0.05".'
            ),
        ),
        (
            "=3",
            (
                "--run-config takes key=value pairs separated by spaces (or a .toml file), got "
                "'=3'; e.g. --run-config \"num-server-rounds=5 learning-rate=0.05\"."
            ),
        ),
        (
            "a..b=1",
            (
                "--run-config a..b=1: 'a..b' is not a TOML key; use letters, digits, '-', '_' and "
                "'.' (e.g. num-server-rounds)."
            ),
        ),
        (
            "x=[1, 2]",
            (
                "--run-config x=[1, 2]: x is a list, but run config values are bools, numbers or "
                "strings."
            ),
        ),
        (
            "missing.toml",
            (
                "--run-config missing.toml: cannot read this TOML file (No such file or directory); "
                "give an existing .toml file or key=value pairs."
            ),
        ),
    ],
)
def test_a_malformed_value_is_refused_with_the_fix(
    value: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(FederationError) as raised:
        parse_run_config([value], tmp_path)
    assert str(raised.value) == message


def test_a_toml_file_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("lr = \n")
    with pytest.raises(FederationError, match=r"^--run-config bad.toml is not valid TOML: "):
        parse_run_config(["bad.toml"], tmp_path)
