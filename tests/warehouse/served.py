"""A warehouse service on a loopback port around a DuckDB backend, for tests that go over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from salesloop.local.warehouse_server import WarehouseHTTPServer
from salesloop.warehouse.duckdb import DuckDBWarehouse
from salesloop.warehouse.http import HttpWarehouse


@contextmanager
def served_warehouse(backend: DuckDBWarehouse) -> Iterator[HttpWarehouse]:
    """An HttpWarehouse talking to ``backend`` through the real service; closes all three."""
    server = WarehouseHTTPServer(("127.0.0.1", 0), backend)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    client = HttpWarehouse(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        backend.close()
