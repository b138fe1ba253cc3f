"""The app projects here import ``flwr``: only `fedlab run` (or Flower) may import them."""

collect_ignore_glob = ["*/*/*.py", "run_simulation/*.py"]
