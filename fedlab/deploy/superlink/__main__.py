"""``python -m fedlab.deploy.superlink``."""

import sys

from fedlab.deploy.superlink.command import main

sys.exit(main())
