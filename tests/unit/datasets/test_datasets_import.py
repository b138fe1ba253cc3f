"""Importing fedlab.datasets is cheap: the heavy libraries wait until data is loaded or drawn."""

from __future__ import annotations

import subprocess
import sys


def test_importing_fedlab_datasets_loads_neither_hugging_face_nor_pandas_nor_matplotlib() -> None:
    code = (
        "import sys, fedlab.datasets, fedlab.datasets.partitioner\n"
        "heavy = [m for m in ('datasets', 'pandas', 'pyarrow', 'matplotlib', 'sklearn', 'torch') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_building_a_federated_dataset_from_a_name_loads_nothing_yet() -> None:
    code = (
        "import sys\n"
        "from fedlab.datasets import FederatedDataset, DirichletPartitioner\n"
        "FederatedDataset.from_hub('someone/data', partitioners={'train': 10})\n"
        "FederatedDataset.from_sklearn('digits', partitioners={'train': DirichletPartitioner(5, 'label', 0.5)})\n"
        "print(','.join(m for m in ('datasets', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
