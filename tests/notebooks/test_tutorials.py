"""Every tutorial runs top to bottom under nbclient, and tutorial 1 exports with its pictures.

The tutorials' install cell is skipped here because fedlab is importable. Widget state is
not stored, as JupyterLab does not store it by default: an exported notebook then falls
back to the PNG snapshot each dashboard output carries.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.browser.jupyter_browser import ARTIFACTS, alive, chromium

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(autouse=True)
def kernel_picks_its_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDLAB_DISPLAY", raising=False)  # the kernel inherits the environment


def execute(name: str, cwd: Path) -> Any:
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", store_widget_state=False,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return notebook


def outputs(notebook: Any) -> list[Any]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def dashboards(notebook: Any) -> list[Any]:
    return [out for out in outputs(notebook) if WIDGET_VIEW in out.get("data", {})]


def text(notebook: Any) -> str:
    return "".join(out.get("text", "") for out in outputs(notebook) if out.output_type == "stream")


def opens_with_a_colab_badge_and_a_guarded_install(notebook: Any, name: str) -> None:
    first, second = notebook.cells[0], notebook.cells[1]
    assert f"colab.research.google.com/github/fedlab-sdk/fedlab/blob/main/tutorials/{name}" in first.source
    assert 'if importlib.util.find_spec("fedlab") is None:\n    %pip install -q fedlab-sdk' in second.source
    assert second.outputs == []  # skipped: fedlab is importable


def test_every_tutorial_is_tested_here() -> None:
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == [
        "01-federated-learning-in-30-minutes.ipynb",
        "02-strategies.ipynb",
        "03-custom-messages-and-analytics.ipynb",
        "04-from-notebook-to-deployment.ipynb",
        "05-privacy.ipynb",
        "06-scikit-learn.ipynb",
        "07-xgboost.ipynb",
        "08-pandas-analytics.ipynb",
        "09-keras.ipynb",
        "10-jax.ipynb",
        "11-lightning.ipynb",
        "12-fastai.ipynb",
        "13-transformers-lora.ipynb",
        "14-mlx.ipynb",
        "15-bring-your-flower-app.ipynb",
        "16-comparing-strategies.ipynb",
    ]


def test_tutorial_5_shows_dp_sgd_central_and_local_dp_secagg_and_an_encrypted_aggregate_equal_to_plaintext(
    tmp_path: Path,
) -> None:
    name = "05-privacy.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    epsilons = [float(v) for v in re.findall(r"round \d: mean client epsilon ([0-9.]+)", printed)]
    assert len(epsilons) == 3 and 0 < epsilons[0] < epsilons[1] < epsilons[2]
    swept = [float(v) for v in re.findall(r"^noise multiplier [0-9.]+: epsilon +([0-9.]+)", printed, re.MULTILINE)]
    assert len(swept) == 3 and swept == sorted(swept, reverse=True)  # more noise, less epsilon
    # Central DP: the accountant's epsilon grows every round, and falls as the noise grows.
    spent = [float(v) for v in re.findall(r"round \d: epsilon ([0-9.]+) \(delta=1e-05, fixed-size sampling, 10 of 20", printed)]
    assert len(spent) == 3 and spent == sorted(spent) and spent[0] > 0
    central = [float(v) for v in re.findall(r"central DP, z=[0-9.]+: epsilon +([0-9.]+)", printed)]
    assert len(central) == 3 and central == sorted(central, reverse=True)
    # Local DP: more epsilon, less noise, more accuracy.
    local = [float(v) for v in re.findall(r"local DP, epsilon +[0-9]+ per round and client: accuracy ([0-9.]+)", printed)]
    assert len(local) == 3 and local == sorted(local)
    # SecAgg+: the server's strategy was handed only the survivors' mean, never one client's update.
    assert re.search(r"round 1: the server was handed 4 updates; all identical: True", printed)
    masked, clear = (float(v) for v in re.search(r"SecAgg\+ \(2 of 6 dropped each round\) ([0-9.]+), plain FedAvg of all 6 ([0-9.]+)", printed).groups())  # type: ignore[union-attr]
    assert masked > 0.8 and clear > 0.8
    assert sum("image/png" in out.get("data", {}) and WIDGET_VIEW not in out.get("data", {}) for out in outputs(notebook)) == 2
    assert "server can decrypt: False" in printed
    error = float(re.search(r"max \|encrypted - plaintext\| after 3 rounds = ([0-9.e+-]+)", printed).group(1))  # type: ignore[union-attr]
    assert error < 1e-5
    clear, decrypted = re.search(r"accuracy in the clear ([0-9.]+), decrypted ([0-9.]+)", printed).groups()  # type: ignore[union-attr]
    assert clear == decrypted and float(clear) > 0.8


def test_tutorial_3_computes_federated_statistics_equal_to_pooled_ones(tmp_path: Path) -> None:
    name = "03-custom-messages-and-analytics.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    assert "best threshold: 55.0" in text(notebook)
    shown = dashboards(notebook)
    assert len(shown) == 2 and all("image/png" in out.data for out in shown)
    assert shown[0].data["text/plain"].endswith("finished: 2 rounds in " + shown[0].data["text/plain"].split(" in ")[-1])


def test_tutorial_2_shows_robust_and_custom_strategies_resisting_poisoned_clients(tmp_path: Path) -> None:
    name = "02-strategies.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    accuracy = {
        line.rsplit(" ", 1)[0].strip(): float(line.rsplit(" ", 1)[1])
        for line in printed.splitlines()
        if line.startswith(("FedMedian", "FedTrimmedAvg", "Krum", "FedAvg  "))
    }
    assert accuracy["FedAvg"] < 0.3 < min(accuracy["FedMedian"], accuracy["FedTrimmedAvg"], accuracy["Krum"])
    outliers = float(printed.split("without outliers ")[1].split()[0])
    assert outliers > 0.8
    assert len(dashboards(notebook)) == 1


def test_tutorial_4_deploys_to_a_superlink_started_from_the_cli_and_stops_it(tmp_path: Path) -> None:
    name = "04-from-notebook-to-deployment.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert "largest difference from the simulation: " in printed
    started = printed.split("SuperLink ", 1)[1].split("\n", 1)[0]  # "123 SuperNodes [124, 125, 126]"
    pids = [int(p) for p in started.replace("SuperNodes", "").strip("[] ").replace("[", "").replace(",", " ").split()]
    assert len(pids) == 4 and f"stopped: {sorted(pids)}" in printed
    assert not [pid for pid in pids if alive(pid)]
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["3 clients", "3 clients"]
    assert all("image/png" in out.data for out in shown)


def test_tutorial_1_runs_and_its_html_export_shows_the_dashboard_png_offline(tmp_path: Path) -> None:
    from nbconvert import HTMLExporter

    name = "01-federated-learning-in-30-minutes.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert "centralised accuracy: 0.9" in printed and "rounds completed: 6" in printed
    assert "deployed run, central accuracy: 0.9" in printed
    shown = dashboards(notebook)
    # FedAvg IID and non-IID, the resumed run, and the deployment to 3 local SuperNodes.
    assert len(shown) == 4 and all("image/png" in out.data for out in shown)
    assert shown[-1].data["text/plain"].startswith("fedlab dashboard: FedAvg · 3 clients · finished: 3 rounds")
    png = base64.b64decode(shown[0].data["image/png"])
    assert png.startswith(b"\x89PNG")

    html, _ = HTMLExporter().from_notebook_node(notebook)
    assert shown[0].data["image/png"][:200] in html
    ARTIFACTS.mkdir(exist_ok=True)
    page_file = ARTIFACTS / "tutorial-01.html"
    page_file.write_text(html, encoding="utf-8")
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        blocked: list[str] = []

        def offline(route: Any) -> None:
            if route.request.url.startswith(("file:", "data:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        page.goto(page_file.as_uri())
        images = page.evaluate(
            """() => [...document.querySelectorAll('img')]
                .filter(i => i.src.startsWith('data:image/png'))
                .map(i => [i.complete, i.naturalWidth, i.naturalHeight])"""
        )
        # Four dashboards (880 x 656 snapshots) and History.plot(), all decoded offline.
        assert len(images) == 5 and all(done and w > 800 and h > 600 for done, w, h in images), images
        assert images[0] == [True, 880, 656]
        snapshot = page.locator("img[src^='data:image/png']").first
        snapshot.screenshot(path=str(ARTIFACTS / "tutorial-01-export.png"))


@pytest.mark.parametrize("name", sorted(p.name for p in TUTORIALS.glob("*.ipynb")))


def test_tutorials_are_stored_without_outputs(name: str) -> None:
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def test_tutorial_8_federated_pandas_statistics_equal_the_pooled_ones(tmp_path: Path) -> None:
    name = "08-pandas-analytics.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    worst = float(re.search(r"from pooled pandas: ([0-9.e+-]+)", printed).group(1))  # type: ignore[union-attr]
    assert worst < 1e-12
    assert "histograms equal np.histogram of the pooled data: True" in printed
    assert "every quantile within its stated bound" in printed
    gap = float(re.search(r"grouped means, largest relative difference from pooled: ([0-9.e+-]+)", printed).group(1))  # type: ignore[union-attr]
    assert gap < 1e-12
    assert len(dashboards(notebook)) == 2


def test_tutorial_6_federates_scikit_learn_estimators_to_093_and_a_scaler_equal_to_the_pooled_one(tmp_path: Path) -> None:
    name = "06-scikit-learn.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert "federated mean equals pooled: True" in printed and "federated variance equals pooled: True" in printed
    accuracy = {kind: float(v) for kind, v in re.findall(r"^federated (\w+) accuracy: ([0-9.]+)", printed, re.MULTILINE)}
    assert set(accuracy) == {"LogisticRegression", "SGDClassifier", "MLPClassifier"}
    assert min(accuracy.values()) >= 0.93  # the accuracy the tutorial states, seed 0
    assert "labels per hospital: [[1], [1], [0]," in printed
    assert float(re.search(r"non-IID LogisticRegression accuracy: ([0-9.]+)", printed).group(1)) >= 0.93  # type: ignore[union-attr]
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["6 clients", "6 clients"]
    assert all("image/png" in out.data for out in shown)


def test_tutorial_7_federates_xgboost_by_bagging_and_cyclic_boosting_to_093(tmp_path: Path) -> None:
    name = "07-xgboost.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    bagged = re.search(r"bagging: 50 trees, federated accuracy ([0-9.]+), held-out accuracy ([0-9.]+)", printed)
    cycled = re.search(r"cyclic: 20 trees, held-out accuracy ([0-9.]+)", printed)
    assert bagged and cycled, printed
    assert min(float(bagged.group(1)), float(bagged.group(2)), float(cycled.group(1))) >= 0.93
    assert len(dashboards(notebook)) == 2


def test_tutorial_16_compares_four_strategies_in_one_dashboard_and_forks_fedavg_at_round_5(tmp_path: Path) -> None:
    name = "16-comparing-strategies.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    found = dict(re.findall(r"^(.+) held-out accuracy after 10 rounds: ([0-9.]+)$", printed, re.MULTILINE))
    assert list(found) == ["FedAvg", "FedProx μ=0.1", "Scaffold", "FedAdam"], printed
    assert min(float(v) for v in found.values()) >= 0.85  # the accuracy the tutorial states, seed 0
    assert "fork's first 5 rounds equal FedAvg's: True" in printed
    forked = re.search(r"held-out accuracy: ([0-9.]+)$", printed, re.MULTILINE)
    assert forked and float(forked.group(1)) >= 0.85
    shown = dashboards(notebook)  # the comparison, the fork's own run, parent and fork together
    assert [out.data["text/plain"].split(" · ")[0] for out in shown] == [
        "fedlab comparison: FedAvg, FedProx μ=0.1, Scaffold, FedAdam",
        "fedlab dashboard: FedAdam",
        "fedlab comparison: FedAvg, FedAvg → FedAdam at round 5",
        "fedlab dashboard: FedAvg",
    ]
    assert all("image/png" in out.data for out in shown)
    assert (tmp_path / "checkpoints" / "fedavg" / "rounds" / "round-000010").is_dir()
    # Reading the failures panel: client 3 raised in round 2, and only there.
    assert re.search(
        r"^1 client failure:\n  client 3 \(node \d+\) · round 2 · train · "
        r"ValueError: client 3 cannot read its data in round 2$",
        printed,
        re.MULTILINE,
    ), printed
    assert "traceback kept: True" in printed
    assert "1 client failure" in shown[-1].data["text/plain"]


def test_tutorial_9_federates_a_keras_network_on_digits_to_090_bit_exact_and_equal_on_threads(tmp_path: Path) -> None:
    name = "09-keras.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert float(re.search(r"federated Keras accuracy: ([0-9.]+)", printed).group(1)) >= 0.90  # type: ignore[union-attr]
    assert "round trip bit-exact: True" in printed
    assert "threads backend equals inline bit for bit: True" in printed
    assert "['sequential/dense/kernel', 'sequential/dense/bias', 'sequential/dense_1/kernel', 'sequential/dense_1/bias']\n" * 2 in printed
    assert not [out for out in outputs(notebook) if out.output_type == "stream" and out.name == "stderr"]
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients", "5 clients"]
    assert all("image/png" in out.data for out in shown)


def test_tutorial_10_federates_flax_nnx_and_linen_to_090_compiling_each_step_once(tmp_path: Path) -> None:
    name = "10-jax.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert "hidden/kernel/.value" in printed and "round trip bit-exact: True" in printed
    assert "['blocks/[0]', 'blocks/[1]/(0)', 'blocks/[1]/(1)']" in printed
    accuracy = {kind: float(v) for kind, v in re.findall(r"^federated (\w+) accuracy: ([0-9.]+)", printed, re.MULTILINE)}
    assert set(accuracy) == {"NNX", "Linen"} and min(accuracy.values()) >= 0.90  # as stated, seed 0
    traced = re.search(r"loss traced (\d+) times for 30 client calls", printed)
    assert traced is not None and int(traced.group(1)) == 2  # the train step and the evaluate step
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients", "5 clients"]


def test_tutorial_15_runs_a_flower_app_unchanged_with_fedlab_run_and_in_the_notebook(tmp_path: Path) -> None:
    name = "15-bring-your-flower-app.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    line = "Running a Flower app: its flwr imports use fedlab's Flower compatibility layer (fedlab.compat.flower)."
    assert printed.count(line) == 1, printed
    assert "(5 clients)" in printed and "Finished 5 round(s)." in printed
    cli = float(re.search(r"^federated accuracy after 5 rounds: ([0-9.]+)", printed, re.MULTILINE).group(1))  # type: ignore[union-attr]
    here = float(re.search(r"notebook run, accuracy after 5 rounds: ([0-9.]+)", printed).group(1))  # type: ignore[union-attr]
    assert cli >= 0.9 and here == cli  # the same apps and partitions give the same model


def test_tutorial_11_federates_a_lightning_module_to_090_on_digits_writing_no_file(tmp_path: Path) -> None:
    name = "11-lightning.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert float(re.search(r"federated Lightning accuracy: ([0-9.]+)", printed).group(1)) >= 0.90  # type: ignore[union-attr]
    assert "files written: []" in printed and "round trip exact: True" in printed and "names kept: True" in printed
    assert not (tmp_path / "lightning_logs").exists()
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients"]


def test_tutorial_13_federates_lora_adapters_of_a_local_bert_to_090_sending_only_adapter_bytes(tmp_path: Path) -> None:
    name = "13-transformers-lora.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    sizes = re.search(r"bytes per client per round: adapter (\d+), full model (\d+), saved (\d+)", printed)
    assert sizes, printed
    adapter, full, saved = (int(v) for v in sizes.groups())
    assert saved == full - adapter and adapter < full / 3
    accuracy = re.search(r"held-out accuracy: ([0-9.]+)", printed)
    assert accuracy and float(accuracy.group(1)) >= 0.90  # the accuracy the tutorial states, seed 0
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients"]
    assert all("image/png" in out.data for out in shown)


def test_tutorial_12_federates_a_fastai_learner_to_090_on_digits(tmp_path: Path) -> None:
    name = "12-fastai.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert float(re.search(r"federated fastai accuracy: ([0-9.]+)", printed).group(1)) >= 0.90  # type: ignore[union-attr]
    assert "round trip exact: True" in printed
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients"]


def test_tutorial_14_federates_an_mlx_network_to_090_bit_exact_tracing_each_step_once(tmp_path: Path) -> None:
    name = "14-mlx.ipynb"
    notebook = execute(name, tmp_path)
    opens_with_a_colab_badge_and_a_guarded_install(notebook, name)
    printed = text(notebook)
    assert "hidden.weight  float32 (32, 64)" in printed and "round trip bit-exact: True" in printed
    assert "MlxRecordError - Record entry 'hidden.weight' is float32[32, 64] but the model expects float32[16, 64]" in printed
    accuracy = re.search(r"federated MLX accuracy: ([0-9.]+)", printed)
    assert accuracy is not None and float(accuracy.group(1)) >= 0.90  # as stated, seed 0
    traced = re.search(r"loss traced (\d+) times for 30 client calls", printed)
    assert traced is not None and int(traced.group(1)) == 2  # the train step and the evaluate step
    assert "threads backend equals inline bit for bit: True" in printed
    shown = dashboards(notebook)
    assert [out.data["text/plain"].split(" · ")[1] for out in shown] == ["5 clients", "5 clients"]
