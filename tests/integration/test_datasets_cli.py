"""`fedlab datasets`: partitions written as parquet, then loaded by a node from its partition-path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fedlab.cli.main import main
from fedlab.context import Context
from fedlab.datasets import FederatedDataset, load_partition


def node(path: Path) -> Context:
    """The Context of a SuperNode started with node config partition-path=<path>."""
    return Context(run_id=1, node_id=5, node_config={"partition-path": str(path)})


def test_the_command_writes_digits_partitions_that_nodes_load_with_no_network(
    tmp_path: Path,
) -> None:
    out = tmp_path / "parts"
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedlab.cli.main",
            "datasets",
            "digits",
            "--out",
            str(out),
            "--num-partitions",
            "5",
            "--test-size",
            "0.2",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert "wrote 5 partitions of 'train' (1438 rows, 287 to 288 per partition)" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "sklearn:digits" and manifest["partition_sizes"]["train"] == [
        288,
        288,
        288,
        287,
        287,
    ]
    # Same source, partitioner and seed in-process: the node's file holds exactly its partition.
    fds = FederatedDataset.from_sklearn("digits", partitioners={"train": 5}, test_size=0.2, seed=3)
    seen = []
    for pid in range(5):
        loaded = load_partition(node(out / f"partition-{pid}"), "train")
        expected = fds.load_partition(pid)
        assert loaded.column_names == ["features", "label"]
        assert loaded["label"][:] == expected["label"][:]
        assert (
            loaded.with_format("numpy")[:]["features"].tolist()
            == expected.with_format("numpy")[:]["features"].tolist()
        )
        seen.append(len(loaded))
    assert sum(seen) == 1438


def test_the_command_partitions_a_parquet_folder_by_label_and_keeps_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame({"x": range(400), "label": [i % 4 for i in range(400)]}).to_parquet(
        source / "train.parquet"
    )
    out = tmp_path / "out"
    code = main(
        [
            "datasets",
            str(source),
            "--out",
            str(out),
            "--partitioner",
            "dirichlet",
            "--alpha",
            "0.3",
            "--num-partitions",
            "4",
            "--min-partition-size",
            "5",
        ]
    )
    assert code == 0, capsys.readouterr().err
    frames = [pq.read_table(out / f"partition-{i}" / "train.parquet").to_pandas() for i in range(4)]
    assert sorted(pd.concat(frames)["x"]) == list(range(400))
    assert json.loads((out / "manifest.json").read_text())["options"]["alpha"] == 0.3


def test_the_command_refuses_to_write_over_a_folder_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["datasets", "iris", "--out", str(tmp_path), "--num-partitions", "3"]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["datasets", "iris", "--out", str(tmp_path), "--overwrite"]) == 1
    out = tmp_path / "parts"
    assert main(["datasets", "iris", "--out", str(out), "--num-partitions", "3"]) == 0
    (out / "mine.txt").write_text("keep me too")
    assert (
        main(["datasets", "iris", "--out", str(out), "--num-partitions", "2", "--overwrite"]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "mine.txt",
        "partition-0",
        "partition-1",
    ]
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_the_command_reports_a_bad_partitioner_setting_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "datasets",
            "iris",
            "--out",
            str(tmp_path / "o"),
            "--partitioner",
            "pathological",
            "--classes-per-partition",
            "5",
        ]
    )
    assert code == 1
    assert "only 3 classes" in capsys.readouterr().err


def test_test_size_also_writes_the_whole_test_split_for_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "parts"
    args = ["datasets", "digits", "--out", str(out), "--num-partitions", "5"]
    assert main([*args, "--test-size", "0.2", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        (
            f"wrote 5 partitions of 'train' (1438 rows, 287 to 288 per partition) to "
            f"{out}/partition-*/train.parquet"
        ),
        f"wrote 'test' whole (359 rows) to {out}/test.parquet",
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        *[f"partition-{i}" for i in range(5)],
        "test.parquet",
    ]
    assert [p.name for p in (out / "partition-0").iterdir()] == ["train.parquet"]
    assert json.loads((out / "manifest.json").read_text())["whole_splits"] == {"test": 359}
    # Exactly the in-process test split: the rows the partitions do not hold.
    fds = FederatedDataset.from_sklearn("digits", partitioners={"train": 5}, test_size=0.2, seed=3)
    written = pq.read_table(out / "test.parquet").to_pandas()
    assert written["label"].tolist() == fds.load_split("test")["label"]
    # Written again without a test split, the old test.parquet goes with the old partitions.
    assert main([*args, "--overwrite"]) == 0
    assert "whole" not in capsys.readouterr().out
    assert not (out / "test.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["whole_splits"] == {}


def test_whole_writes_any_split_unpartitioned_and_refuses_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "parts"
    args = ["datasets", "iris", "--out", str(out), "--num-partitions", "3"]
    assert main([*args, "--whole", "valid"]) == 1
    assert capsys.readouterr().err == "error: There is no split 'valid'; the dataset has ['train'].\n"
    assert not out.exists()
    assert main([*args, "--whole", "train"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote 'train' whole (150 rows) to {out}/train.parquet"
    )
    assert pq.read_table(out / "train.parquet").num_rows == 150
