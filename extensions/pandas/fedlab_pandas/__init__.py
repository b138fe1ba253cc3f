"""fedlab-pandas: federated statistics over pandas DataFrames that never leave the clients.

On each client, :func:`analytics_client_app` answers queries with aggregates of the frame
``load_frame(ctx)`` returns; on the server, :class:`Analytics` (inside any ServerApp) or
:func:`analytics_server_app` combines them exactly: count, mean and variance equal the
pooled ones, histograms over common edges equal ``np.histogram`` of the pooled data, and
quantiles come from a mergeable sketch with a stated error bound.
"""

from __future__ import annotations

from fedlab_pandas._stats import Moments, QuantileEstimate
from fedlab_pandas.client import analytics_client_app
from fedlab_pandas.server import Analytics, Histogram, Key, Report, analytics_server_app

__all__ = [
    "Analytics",
    "Histogram",
    "Key",
    "Moments",
    "QuantileEstimate",
    "Report",
    "analytics_client_app",
    "analytics_server_app",
]
