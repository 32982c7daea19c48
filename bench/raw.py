"""The raw floors of farm-wide runs: the server's own tools and one connection per worker,
with nothing of the portal in the way (no registry, no broker, no driver, no checks).

- dump: `mariadb-dump --single-transaction --quick <db> | gzip > <file>`, P pipelines at
  once (a pool of P threads, each waiting on its own two processes);
- alter: P worker processes, each with one MySQLdb connection, running one statement in
  each database of its share;
- restore: `gzip -dc <file> | mariadb <db>` (or `mariadb <db> < <file>`) into a new database.

Nothing here imports Django: the alter workers are spawned processes that import only this.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

DUMP_ARGS = ("--single-transaction", "--quick")


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@contextmanager
def client_options(params: dict[str, Any]) -> Iterator[str]:
    """An option file for the MariaDB client tools (0600, removed after), as the driver's."""
    descriptor, path = tempfile.mkstemp(prefix="bench-raw-", suffix=".cnf")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(
                "[client]\n"
                f"host={params['host']}\nport={int(params['port'])}\n"
                f"user={params['user']}\npassword={params['password']}\n"
            )
        yield path
    finally:
        os.unlink(path)


# --- dump ----------------------------------------------------------------------------------


def dump_one(options: str, database: str, path: Path) -> dict[str, Any]:
    """One `mariadb-dump --single-transaction --quick <db> | gzip > <file>`, timed."""
    started = time.perf_counter()
    with path.open("wb") as out:
        dump = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            ["mariadb-dump", f"--defaults-file={options}", *DUMP_ARGS, database],  # noqa: S607
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        gzip = subprocess.Popen(  # noqa: S603
            ["gzip", "-c"],  # noqa: S607 - level 6, gzip's default, as the portal's
            stdin=dump.stdout,
            stdout=out,
        )
        dump.stdout.close()  # gzip holds the read end now
        gzip_code, dump_code = gzip.wait(), dump.wait()
    seconds = time.perf_counter() - started
    if dump_code or gzip_code:
        raise RuntimeError(f"raw dump of {database}: mariadb-dump {dump_code}, gzip {gzip_code}")
    return {"database": database, "seconds": seconds, "bytes": path.stat().st_size}


def dump_all(
    params: dict[str, Any], databases: list[str], out_dir: Path, *, parallelism: int
) -> dict[str, Any]:
    """Every database dumped by P pipelines at once; the next starts when one ends."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with client_options(params) as options:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            results = list(
                pool.map(lambda db: dump_one(options, db, out_dir / f"{db}.sql.gz"), databases)
            )
        wall = time.perf_counter() - started
    return {"wall_seconds": wall, "dumps": results}


# --- alter ---------------------------------------------------------------------------------


def _alter_share(params: dict[str, Any], databases: list[str], statement: str) -> dict[str, Any]:
    """In a worker process: one connection, the statement in each database of the share."""
    import MySQLdb

    started = time.time()
    connection = MySQLdb.connect(**params, charset="utf8mb4", autocommit=True)
    timings = []
    try:
        cursor = connection.cursor()
        for database in databases:
            began = time.perf_counter()
            cursor.execute(f"USE {quote_identifier(database)}")
            cursor.execute(statement)
            timings.append(time.perf_counter() - began)
    finally:
        connection.close()
    return {"started": started, "finished": time.time(), "timings": timings}


def _ready() -> int:
    return os.getpid()


def alter_all(
    params: dict[str, Any], databases: list[str], statement: str, *, parallelism: int
) -> dict[str, Any]:
    """P processes (started before the clock runs), each its share of the databases."""
    shares = [databases[n::parallelism] for n in range(parallelism)]
    with ProcessPoolExecutor(max_workers=parallelism, mp_context=get_context("spawn")) as pool:
        # Start every process first: the portal's workers are running before a run, too.
        pids = set()
        while len(pids) < parallelism:
            pids |= {f.result() for f in [pool.submit(_ready) for _ in range(parallelism * 4)]}
        started = time.perf_counter()
        futures = [pool.submit(_alter_share, params, share, statement) for share in shares]
        results = [future.result() for future in futures]
        wall = time.perf_counter() - started
    return {
        "wall_seconds": wall,
        "processes": len(pids),
        "timings": [t for result in results for t in result["timings"]],
    }


# --- restore -------------------------------------------------------------------------------


def restore_one(params: dict[str, Any], database: str, dump: Path) -> float:
    """CREATE DATABASE, then the dump through the `mariadb` client; seconds of both."""
    import MySQLdb

    with client_options(params) as options:
        started = time.perf_counter()
        connection = MySQLdb.connect(**params, autocommit=True)
        try:
            connection.cursor().execute(
                f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET binary"
            )
        finally:
            connection.close()
        client = ["mariadb", f"--defaults-file={options}", database]
        if dump.suffix == ".gz":
            unzip = subprocess.Popen(["gzip", "-dc", str(dump)], stdout=subprocess.PIPE)  # noqa: S603,S607
            load = subprocess.Popen(client, stdin=unzip.stdout)  # noqa: S603
            unzip.stdout.close()
            codes = (load.wait(), unzip.wait())
        else:
            with dump.open("rb") as source:
                codes = (subprocess.run(client, stdin=source, check=False).returncode,)  # noqa: S603
        seconds = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"raw restore into {database} exited {codes}")
    return seconds


def dump_plain(params: dict[str, Any], database: str, path: Path) -> int:
    """`mariadb-dump --single-transaction --quick <db> > <file>` (not timed): the native
    dump, extended INSERTs, for the second restore floor."""
    with client_options(params) as options, path.open("wb") as out:
        subprocess.run(  # noqa: S603
            ["mariadb-dump", f"--defaults-file={options}", *DUMP_ARGS, database],  # noqa: S607
            stdout=out,
            check=True,
        )
    return path.stat().st_size


def dump_single(params: dict[str, Any], database: str, path: Path) -> dict[str, Any]:
    """One raw `mariadb-dump | gzip`, alone: the floor of a single wiki's backup."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with client_options(params) as options:
        result = dump_one(options, database, path)
    return {"seconds": round(result["seconds"], 3), "bytes": result["bytes"]}
