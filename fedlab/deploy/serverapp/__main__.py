"""``python -m fedlab.deploy.serverapp``."""

import sys

from fedlab.deploy.serverapp.process import main

sys.exit(main())
