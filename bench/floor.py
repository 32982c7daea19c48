"""The physical floor: CREATE DATABASE + the rendered schema through one MySQLdb connection.

Nothing of the portal runs here: no registry, no driver, no existence checks. What a create
costs above this is the portal's (and the broker's) doing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import MySQLdb

from bench.stats import summarize
from provisioning.drivers.base import DATABASE_NAME_RE
from provisioning.drivers.mariadb import TABLE_OPTIONS, quote_identifier
from provisioning.drivers.schema import render_schema, split_statements


def connect(params: dict[str, Any]) -> MySQLdb.Connection:
    return MySQLdb.connect(**params, charset="utf8mb4", autocommit=True)


class FloorDatabases:
    """Names of the floor's databases (`benchfloor_<run token>_<n>`), all remembered so
    that cleanup drops exactly those and nothing else."""

    def __init__(self, run_token: str) -> None:
        self.run_token = run_token
        self.names: list[str] = []
        self._lock = threading.Lock()

    def new_name(self) -> str:
        with self._lock:
            name = f"benchfloor_{self.run_token}_{len(self.names)}"
            if not DATABASE_NAME_RE.fullmatch(name):
                raise ValueError(f"floor database name {name!r} is not a safe identifier")
            self.names.append(name)
        return name

    def drop_all(self, params: dict[str, Any]) -> None:
        connection = connect(params)
        try:
            cursor = connection.cursor()
            for name in self.names:
                cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")
        finally:
            connection.close()


def load_schema_once(cursor, name: str, statements: list[str]) -> tuple[float, float]:
    """Create `name` and load the schema (timed), then drop it (timed separately)."""
    quoted = quote_identifier(name)
    started = time.perf_counter()
    cursor.execute(f"CREATE DATABASE {quoted} CHARACTER SET binary")
    cursor.execute(f"USE {quoted}")
    for statement in statements:
        cursor.execute(statement)
    loaded = time.perf_counter()
    cursor.execute(f"DROP DATABASE {quoted}")
    return loaded - started, time.perf_counter() - loaded


def rendered_statements(schema_sql: str) -> list[str]:
    schema = render_schema(schema_sql, table_prefix="", table_options=TABLE_OPTIONS)
    return list(split_statements(schema))


def measure_floor(
    params: dict[str, Any], schema_sql: str, databases: FloorDatabases, *, samples: int
) -> dict[str, Any]:
    """Median and p95 of CREATE DATABASE + schema load on one connection; DROP timed apart."""
    statements = rendered_statements(schema_sql)
    connection = connect(params)
    try:
        cursor = connection.cursor()
        load_schema_once(cursor, databases.new_name(), statements)  # warm the server's caches
        timings = [
            load_schema_once(cursor, databases.new_name(), statements) for _ in range(samples)
        ]
    finally:
        connection.close()
    return {
        "what": "CREATE DATABASE + schema load through one MySQLdb connection (DROP not timed)",
        "statements": len(statements),
        "create_and_load": summarize([load for load, _ in timings]),
        "drop": summarize([drop for _, drop in timings]),
    }


def measure_parallel_floor(
    params: dict[str, Any],
    schema_sql: str,
    databases: FloorDatabases,
    *,
    samples: int,
    connections: int,
) -> dict[str, Any]:
    """The server's own throughput: `connections` loads at once, DROP included, as a rate."""
    statements = rendered_statements(schema_sql)
    per_connection = max(1, samples // connections)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            connection = connect(params)
            try:
                cursor = connection.cursor()
                for _ in range(per_connection):
                    load_schema_once(cursor, databases.new_name(), statements)
            finally:
                connection.close()
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    elapsed = _timed_threads(worker, connections)
    if errors:
        raise errors[0]
    total = per_connection * connections
    return {
        "what": f"{connections} connections loading at once, CREATE + schema + DROP each",
        "connections": connections,
        "databases": total,
        "seconds": round(elapsed, 3),
        "databases_per_second": round(total / elapsed, 2),
    }


def _timed_threads(target: Callable[[], None], count: int) -> float:
    threads = [threading.Thread(target=target) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
