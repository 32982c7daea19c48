"""Is each configured resource driver reachable? Cheap checks for the readiness probe.

One function per driver kind. Each asks its server one question that reads nothing of any
wiki and creates nothing (a connection and `SELECT 1`, a HEAD of the shared bucket, the
cluster's banner; for the embedded drivers, whether their folder is writable) and raises
`Unreachable` with a message fit for a probe's answer (never credentials). A driver class
these functions do not know is not checked (it does not fail readiness).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import MySQLdb
from botocore import exceptions as boto_errors
from opensearchpy.exceptions import OpenSearchException, TransportError

from provisioning.drivers import database_driver, search_driver, storage_driver
from provisioning.drivers.base import DriverError
from provisioning.drivers.filesystem import FilesystemStorageDriver
from provisioning.drivers.local_search import LocalSearchDriver
from provisioning.drivers.mariadb import MariaDBDatabaseDriver
from provisioning.drivers.opensearch import OpenSearchDriver
from provisioning.drivers.s3 import MISSING_CODES, S3StorageDriver
from provisioning.drivers.sqlite import SQLiteDatabaseDriver

PROBE_TIMEOUT_SECONDS = 3


class Unreachable(Exception):
    """The driver's resource cannot be used now; the message says which and why."""


def check_database_driver() -> None:
    driver = _built(database_driver)
    if isinstance(driver, SQLiteDatabaseDriver):
        _writable_folder(driver.root, "database folder")
    elif isinstance(driver, MariaDBDatabaseDriver):
        for cluster, params in sorted(driver.clusters.items()):
            _mariadb_answers(cluster, params)


def check_storage_driver() -> None:
    driver = _built(storage_driver)
    if isinstance(driver, FilesystemStorageDriver):
        _writable_folder(driver.root, "storage folder")
    elif isinstance(driver, S3StorageDriver):
        _s3_answers(driver)


def check_search_driver() -> None:
    driver = _built(search_driver)
    if isinstance(driver, LocalSearchDriver):
        _local_search_opens(driver.path)
    elif isinstance(driver, OpenSearchDriver):
        _opensearch_answers(driver)


def _built(factory):
    """The configured driver; a configuration it refuses (a bad URL) is unreachable too."""
    try:
        return factory()
    except DriverError as exc:
        raise Unreachable(str(exc)) from exc


def _writable_folder(folder: Path, what: str) -> None:
    """The folder, or the nearest existing parent that the driver would create it in."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise Unreachable(f"{what} {folder} is not writable")


def _mariadb_answers(cluster: str, params: dict) -> None:
    try:
        connection = MySQLdb.connect(**params, connect_timeout=PROBE_TIMEOUT_SECONDS)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            connection.close()
    except MySQLdb.Error as exc:
        code = exc.args[0] if exc.args else "?"
        reason = exc.args[1] if len(exc.args) > 1 else type(exc).__name__
        raise Unreachable(
            f"mariadb cluster {cluster} ({params.get('host')}:{params.get('port')}): "
            f"error {code}: {reason}"
        ) from exc


def _s3_answers(driver: S3StorageDriver) -> None:
    """HEAD of the shared bucket. A missing bucket is fine: the first create makes it (and
    with a bucket per wiki there is none); refused credentials or no answer are not."""
    try:
        driver.client.head_bucket(Bucket=driver.bucket)
    except boto_errors.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_CODES:
            return
        raise Unreachable(f"s3 bucket {driver.bucket}: {code or 'refused'}") from exc
    except boto_errors.BotoCoreError as exc:
        raise Unreachable(f"s3 endpoint: {exc}") from exc


def _local_search_opens(path: Path) -> None:
    if not path.exists():
        _writable_folder(path.parent, "search folder")
        return
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise Unreachable(f"search store {path}: {exc}") from exc


def _opensearch_answers(driver: OpenSearchDriver) -> None:
    # The driver's own client (its hosts, TLS and authentication), with a probe's timeout.
    try:
        driver._client.info(request_timeout=PROBE_TIMEOUT_SECONDS)
    except TransportError as exc:  # the server answered with an error, or no connection
        status = exc.status_code
        answer = f"HTTP {status}" if isinstance(status, int) else "no connection"
        raise Unreachable(f"opensearch: {type(exc).__name__} ({answer})") from exc
    except OpenSearchException as exc:
        raise Unreachable(f"opensearch: {type(exc).__name__}") from exc
