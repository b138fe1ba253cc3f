"""fedlab and Flower side by side: the reference workloads, alternating A B A B.

Flower's scripts and its process-tree sampler live in ../shared/bench/flower (build its
venv once with its setup.sh, which makes /tmp/flwr-venv). Both frameworks are measured by
the same sampler (wall time from spawn to exit, peak RSS of the whole process tree), in
alternating order so that background noise hits both alike; the numpy floor runs too.

    python bench/compare_flower.py                   # every workload, 3 repeats each
    python bench/compare_flower.py --repeat 5 --only w1-100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# FLOWER_DIR overrides it, e.g. from a checkout that does not sit beside ../shared.
FLOWER_DIR = Path(os.environ.get("FLOWER_DIR", HERE.parent.parent / "shared" / "bench" / "flower"))
FLOWER_PY = Path(os.environ.get("FLWR_PY", "/tmp/flwr-venv/bin/python"))

# name -> (fedlab args for bench/simulation.py --one, Flower script and args, floor args or None)
WORKLOADS: dict[str, tuple[list[str], list[str], list[str] | None]] = {
    "w1-100": (["w1", "--clients", "100", "--rounds", "5", "--params", "1000000"],
               ["w1_overhead.py", "--clients", "100", "--rounds", "5", "--params", "1000000"],
               ["--clients", "100", "--rounds", "5", "--params", "1000000"]),
    "w1-1000": (["w1", "--clients", "1000", "--rounds", "2", "--params", "1000000"],
                ["w1_overhead.py", "--clients", "1000", "--rounds", "2", "--params", "1000000"],
                ["--clients", "1000", "--rounds", "2", "--params", "1000000"]),
    "w1-10m": (["w1", "--clients", "10", "--rounds", "3", "--params", "10000000"],
               ["w1_overhead.py", "--clients", "10", "--rounds", "3", "--params", "10000000"],
               ["--clients", "10", "--rounds", "3", "--params", "10000000"]),
    "w2": (["w2", "--clients", "20", "--rounds", "10"],
           ["w2_digits.py", "--clients", "20", "--rounds", "10"], None),
}


def sampled(workdir: Path, name: str, cmd: list[str]) -> dict[str, object]:
    """Run ``cmd`` under Flower's tree sampler and return its JSON line."""
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FEDLAB_DISPLAY="none")
    out = subprocess.run([str(FLOWER_PY), str(workdir / "measure.py"), name, "--", *cmd],
                         cwd=workdir, capture_output=True, text=True, env=env, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("rc") != 0 or "error" in result:
        raise SystemExit(f"{name} failed: {result}")
    return result


def steady(result: dict[str, object]) -> float:
    """Median round time after round 1 (fedlab/floor: round_s; Flower: its round summary)."""
    rounds = result.get("round_s") or result.get("round_durations_s") or []
    assert isinstance(rounds, list) and rounds, result
    return float(statistics.median(rounds[1:] or rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=list(WORKLOADS), action="append",
                        help="run only this workload (may be repeated)")
    parser.add_argument("--backend", default="inline", help="fedlab's simulation backend")
    args = parser.parse_args()
    if not FLOWER_PY.exists():
        raise SystemExit(f"{FLOWER_PY} is missing: run ../shared/bench/flower/setup.sh first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "flower"
        shutil.copytree(FLOWER_DIR, workdir, ignore=shutil.ignore_patterns("logs", "results.jsonl"))
        for name, (ours, theirs, floor) in WORKLOADS.items():
            if args.only and name not in args.only:
                continue
            runs: dict[str, list[dict[str, object]]] = {"fedlab": [], "flower": [], "floor": []}
            for _ in range(args.repeat):
                runs["fedlab"].append(sampled(workdir, f"fedlab-{name}",
                                              [sys.executable, str(HERE / "simulation.py"), "--backend", args.backend,
                                               "--one", *ours]))
                runs["flower"].append(sampled(workdir, f"flower-{name}", [str(FLOWER_PY), *theirs]))
                if floor is not None:
                    runs["floor"].append(sampled(workdir, f"floor-{name}",
                                                 [sys.executable, str(HERE / "floor.py"), *floor]))
            rows.append((name, runs))
    print(f"medians of {args.repeat} alternating runs (fedlab backend: {args.backend}); "
          "ratio = Flower / fedlab\n")
    print("| workload | fedlab wall s | Flower wall s | ratio | fedlab steady round s | Flower steady s | ratio "
          "| numpy floor round s | fedlab / floor | fedlab peak tree RSS MB | Flower peak MB | ratio | result fedlab / Flower |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts: list[str] = []
    for name, runs in rows:
        def med(kind: str, key: str) -> float:
            return float(statistics.median(float(r[key]) for r in runs[kind]))  # type: ignore[arg-type]

        fw, lw = med("fedlab", "wall_s"), med("flower", "wall_s")
        fs = statistics.median(steady(r) for r in runs["fedlab"])
        ls = statistics.median(steady(r) for r in runs["flower"])
        fm, lm = med("fedlab", "peak_tree_rss_mb"), med("flower", "peak_tree_rss_mb")
        floor_s = statistics.median(steady(r) for r in runs["floor"]) if runs["floor"] else float("nan")
        ours = runs["fedlab"][0].get("final_value", runs["fedlab"][0].get("final_accuracy"))
        theirs = runs["flower"][0].get("final_value", runs["flower"][0].get("final_test_acc"))
        print(f"| {name} | {fw:.2f} | {lw:.2f} | {lw / fw:.1f}x | {fs:.3f} | {ls:.3f} | {ls / fs:.1f}x | "
              f"{floor_s:.3f} | {fs / floor_s:.2f} | {fm:.0f} | {lm:.0f} | {lm / fm:.1f}x | {ours} / {theirs} |")
        verdicts += targets(name, fw, lw, fs, floor_s, fm, lm, ours, theirs)
    print("\ntargets:")
    for line in verdicts:
        print(f"- {line}")


def targets(name: str, fw: float, lw: float, fs: float, floor_s: float, fm: float, lm: float,
            ours: object, theirs: object) -> list[str]:
    """The issue's targets for ``name``, each with the measured value and met / NOT met."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if name == "w1-100":
        return [f"W1-100 wall >= 20x Flower: {lw / fw:.1f}x, {verdict(lw / fw >= 20)}",
                f"W1-100 steady round <= 1.5x numpy floor: {fs / floor_s:.2f}x, {verdict(fs / floor_s <= 1.5)}",
                f"W1-100 peak memory <= 1/10 of Flower: 1/{lm / fm:.1f}, {verdict(lm / fm >= 10)}"]
    if name == "w1-1000":
        return [f"W1-1000 <= 5 s: {fw:.2f} s, {verdict(fw <= 5)}",
                f"W1-1000 <= 1 GB peak RSS: {fm:.0f} MB, {verdict(fm <= 1024)}"]
    if name == "w2":
        same = isinstance(ours, float) and isinstance(theirs, float) and abs(ours - theirs) < 1e-9
        return [(f"W2 >= 10x Flower at equal accuracy: {lw / fw:.1f}x, accuracy {ours} vs {theirs}, "
                 f"{verdict(lw / fw >= 10 and same)}")]
    return []


if __name__ == "__main__":
    main()
