"""A ServerApp process whose output pipe loses its reader (the SuperLink died) carries on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]

SCRIPT = """
import logging, sys
from fedlab.deploy.serverapp._output import survive_lost_reader
survive_lost_reader()
logging.basicConfig(level=logging.INFO)
print("ready", flush=True)
sys.stdin.readline()  # the reader has gone away once this returns
for i in range(1000):
    print("a line no one reads", i, flush=True)
    logging.info("a log line no one reads %d", i)
open(sys.argv[1], "w").write("carried on")
"""


def test_printing_after_the_reader_of_its_output_died_does_not_end_the_process(tmp_path: Path) -> None:
    done = tmp_path / "done"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(done)], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.stdout.close()  # as if the SuperLink reading the pipe was killed
    process.stdin.write("go\n")
    process.stdin.close()
    assert process.wait(60) == 0
    assert done.read_text() == "carried on"
