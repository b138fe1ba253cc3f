"""The SuperLink: the server SuperNodes, ServerApps and the CLI connect to.

Run one with ``python -m fedlab.deploy.superlink --insecure`` (or ``fedlab superlink``),
or in-process with :class:`SuperLink`.
"""

from __future__ import annotations

from fedlab.deploy.superlink.command import main
from fedlab.deploy.superlink.quotas import UploadLimits
from fedlab.deploy.superlink.server import SuperLink
from fedlab.deploy.superlink.state import LinkState

__all__ = ["LinkState", "SuperLink", "UploadLimits", "main"]
