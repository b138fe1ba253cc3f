"""Deployment transfer benchmark with a 2.5 GB model (not run in CI): past gRPC's 2 GB limit.

The same measurement as ``deploy_transfer.py`` (read its docstring for what the figures
mean), with a model larger than any single gRPC message may be. It needs memory: about
2 x SIZE in this process (the model and a reply), 2 x SIZE per SuperNode (the received
model and its encoded reply) and page cache for the SuperLink's object files; the state
is on disk by default so that the SuperLink does not hold the objects in memory. On a
24 GB machine run it with 1 or 2 nodes, when nothing else needs the memory::

    python bench/deploy_transfer_large.py                 # 2500 MB, 1 node, 1 round
    python bench/deploy_transfer_large.py --nodes 2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_transfer import main

if __name__ == "__main__":
    main(mb=2500, nodes=1, rounds=1, state="sqlite", description=__doc__.splitlines()[0])
