"""Unsupported Flower names and arguments fail with FlowerCompatError naming an alternative."""

from __future__ import annotations

import pytest

from fedlab.compat import flower
from fedlab.compat.flower import FlowerCompatError
from fedlab.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _hook() -> object:
    with flower.enabled():
        yield


def test_an_unknown_name_names_the_nearest_supported_one() -> None:
    with pytest.raises(
        FlowerCompatError,
        match=r"flwr\.app\.ArrayRecrd .*nearest supported name is flwr\.app\.ArrayRecord",
    ):
        from flwr.app import ArrayRecrd  # type: ignore[attr-defined]  # noqa: F401


def test_a_legacy_name_says_what_to_use_instead() -> None:
    with pytest.raises(FlowerCompatError, match="NumPyClient is not supported.*@app.train"):
        from flwr.clientapp import NumPyClient  # type: ignore[attr-defined]  # noqa: F401
    with pytest.raises(FlowerCompatError, match="fedlab-xgboost"):
        from flwr.serverapp.strategy import FedXgbBagging  # type: ignore[attr-defined]  # noqa: F401


def test_a_legacy_strategy_argument_names_its_message_api_counterpart() -> None:
    from flwr.serverapp.strategy import FedAdam, FedAvg

    with pytest.raises(FlowerCompatError, match=r"FedAvg\(fraction_fit=\.\.\.\).*fraction_train"):
        FedAvg(fraction_fit=0.5)
    with pytest.raises(
        FlowerCompatError, match=r"FedAdam\(bet_1=\.\.\.\).*nearest supported argument is beta_1"
    ):
        FedAdam(bet_1=0.5)


def test_legacy_app_constructors_are_refused_with_the_message_api_form() -> None:
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    with pytest.raises(FlowerCompatError, match=r"client_fn.*@app\.train\(\)"):
        ClientApp(client_fn=lambda context: None)
    with pytest.raises(FlowerCompatError, match=r"server_fn.*@app\.main\(\)"):
        ServerApp(server_fn=lambda context: None)


def test_flower_compat_error_is_a_configuration_and_an_import_error() -> None:
    assert issubclass(FlowerCompatError, ConfigurationError)
    assert issubclass(FlowerCompatError, ImportError)
