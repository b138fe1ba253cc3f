"""The exception tree: drawn once in fedlab/errors.py, and true to the classes' bases."""

from __future__ import annotations

import inspect
import re

import pytest

from fedlab import errors
from fedlab.errors import (
    AggregationError,
    ConfigurationError,
    DataError,
    FedlabError,
    MissingDependencyError,
    RunError,
)
from fedlab.strategy import FedAvg

FAMILIES = (ConfigurationError, RunError, DataError, MissingDependencyError)

# One drawn line: tree lead, a class name, and its built-in bases in parentheses, if any.
_LINE = re.compile(r"(?P<lead>[│├└─ ]*)(?P<name>[A-Z]\w*)(?: \((?P<builtins>[\w, ]+)\))?")


def drawn_tree() -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(class, parent drawn above it, built-in bases drawn after it) for every drawn line."""
    doc = errors.__doc__ or ""
    lines = doc[doc.index("\n    FedlabError\n") + 1 :].split("\n\n")[0].splitlines()
    parents: list[str] = []
    tree = []
    for line in lines:
        match = _LINE.match(line.removeprefix("    "))
        assert match is not None, f"cannot read the tree line {line!r}"
        depth = match.start("name") // 4
        assert depth <= len(parents), f"the tree line {line!r} is indented past its parent"
        del parents[depth:]
        builtins = tuple(b.strip() for b in (match["builtins"] or "").split(",") if b.strip())
        tree.append((match["name"], parents[-1] if parents else None, builtins))
        parents.append(match["name"])
    return tree


def test_the_tree_drawn_in_the_docstring_is_each_classs_real_bases() -> None:
    for name, parent, builtins in drawn_tree():
        bases = tuple(base.__name__ for base in getattr(errors, name).__bases__)
        expected = (parent, *builtins) if parent is not None else (*builtins, "Exception")
        assert bases == expected, f"{name} derives from {bases} but is drawn as {expected}"


def test_the_tree_draws_every_error_of_the_module_exactly_once() -> None:
    drawn = [name for name, _, _ in drawn_tree()]
    defined = [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, FedlabError)
    ]

    assert len(drawn) == len(set(drawn))
    assert sorted(drawn) == sorted(defined) == sorted(errors.__all__)


def test_every_error_belongs_to_exactly_one_family() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        if error is not FedlabError:
            families = [f.__name__ for f in FAMILIES if issubclass(error, f)]
            assert len(families) == 1, f"{name} is in the families {families}"


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("RecordError", TypeError),
        ("RecordError", ValueError),
        ("MessageError", ValueError),
        ("ClientAppError", ValueError),
        ("ServerAppError", ValueError),
        ("StrategyError", ValueError),
        ("FederationError", ValueError),
        ("DatasetError", ValueError),
        ("AggregationError", ValueError),
        ("CodecError", ValueError),
        ("HistoryError", ValueError),
        ("MissingDependencyError", ImportError),
    ],
)
def test_errors_are_the_builtin_exceptions_code_may_catch_them_as(
    name: str, builtin: type[Exception]
) -> None:
    assert issubclass(getattr(errors, name), builtin)


def test_a_misconfigured_strategy_is_caught_as_a_configuration_error_and_a_value_error() -> None:
    for catch in (ConfigurationError, ValueError):
        with pytest.raises(catch) as info:
            FedAvg(fraction_train=2)
        assert str(info.value) == "fraction_train must be between 0 and 1, got 2."


def test_an_aggregation_failure_is_a_run_error_not_a_configuration_error() -> None:
    assert issubclass(AggregationError, RunError)
    assert not issubclass(AggregationError, ConfigurationError)


def test_a_missing_dependency_error_gives_the_pip_command() -> None:
    err = MissingDependencyError("ray", "ray", "The Ray backend")

    assert str(err) == (
        "The Ray backend needs the optional package 'ray', which is not installed. "
        'Install it with: pip install "fedlab-sdk[ray]"'
    )
    assert (err.package, err.extra) == ("ray", "ray")
