"""``python -m fedlab.deploy.supernode``."""

import sys

from fedlab.deploy.supernode.command import main

sys.exit(main())
