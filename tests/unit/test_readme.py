"""The README's example is real code: it runs and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_example_trains_to_the_true_weights(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "none")
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert code is not None
    lines = code.group(1).strip().splitlines()
    assert len([line for line in lines if line.strip()]) <= 20
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)
    weights = namespace["result"].arrays.to_numpy()[0]  # type: ignore[attr-defined]
    np.testing.assert_allclose(weights, [1.0, -2.0, 0.5], atol=0.05)


def test_readme_privacy_example_spends_a_growing_epsilon_and_secagg_learns_the_weights(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEDLAB_DISPLAY", "none")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    (privacy,) = [b for b in blocks if "from fedlab.privacy import" in b]
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # the `train` it builds on
    exec(compile(privacy, str(README), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    epsilon = float(printed[-2])  # the central-DP run's epsilon after 10 rounds
    assert 0 < epsilon < float("inf")
    weights = namespace["run"].arrays.to_numpy()[0]  # type: ignore[attr-defined]
    np.testing.assert_allclose(weights, [1.0, -2.0, 0.5], atol=0.05)
