"""The dashboard link findspots prints opens (local dask cluster; the live-scheduler version is in
test_clusters_live.py)."""

from __future__ import annotations

import urllib.request

from findspots.batch.executor import dashboard_link, local_dask_executor


def test_the_dashboard_link_points_where_the_dashboard_listens():
    executor = local_dask_executor(1)
    try:
        link = dashboard_link(executor.client)
        assert link is not None and link.startswith("http://127.0.0.1:") and link.endswith("/status")
        with urllib.request.urlopen(link, timeout=30) as answer:
            assert answer.status == 200
            assert b"Dask" in answer.read()
    finally:
        executor.close()
