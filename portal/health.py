"""Probes: `/healthz` (liveness) and `/readyz` (readiness), with django-health-check.

Liveness says only that the process answers: it touches no dependency, so a database
outage never makes Kubernetes restart every web pod. Readiness runs its checks in parallel,
each within the library's time budget: the registry database (`SELECT 1`), the cache (a key
set and read back), the Celery broker (a connection; the filesystem transport's folders in
the embedded default) and each configured driver (provisioning/health.py). It answers 200,
or 503 naming what failed:

    {"status": "unavailable", "failing": ["database_driver"],
     "checks": {"registry": "ok", "broker": "ok", "database_driver": "Unavailable: ..."}}
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck, HealthCheckResult
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from kombu import Connection
from kombu.exceptions import KombuError

from provisioning import health as drivers_health

BROKER_CONNECT_TIMEOUT_SECONDS = 3


@dataclasses.dataclass
class Registry(Database):
    """The registry database answers `SELECT 1` (the library's check)."""

    name: ClassVar[str] = "registry"


@dataclasses.dataclass
class SharedCache(Cache):
    """The cache (Redis in production) takes and returns a key (the library's check)."""

    name: ClassVar[str] = "cache"


@dataclasses.dataclass
class Broker(HealthCheck):
    """The web process can hand tasks to the workers."""

    name: ClassVar[str] = "broker"

    def run(self) -> None:
        url = settings.CELERY_BROKER_URL
        if url.startswith("filesystem://"):
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            for key in ("data_folder_in", "data_folder_out"):
                folder = Path(str(options.get(key, "")))
                if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                    raise ServiceUnavailable(f"broker folder {folder} is not writable")
            return
        try:
            with Connection(url, connect_timeout=BROKER_CONNECT_TIMEOUT_SECONDS) as connection:
                connection.ensure_connection(max_retries=0)
        except (OSError, KombuError) as exc:
            # The scheme, not the URL: the URL may carry the broker's password.
            raise ServiceUnavailable(f"broker ({urlsplit(url).scheme}): {exc}") from exc


@dataclasses.dataclass
class DriverReachable(HealthCheck):
    """One configured resource driver answers (provisioning/health.py)."""

    kind: str

    CHECKS: ClassVar[dict[str, Callable[[], None]]] = {
        "database": drivers_health.check_database_driver,
        "storage": drivers_health.check_storage_driver,
        "search": drivers_health.check_search_driver,
    }

    @property
    def name(self) -> str:
        return f"{self.kind}_driver"

    def run(self) -> None:
        try:
            self.CHECKS[self.kind]()
        except drivers_health.Unreachable as exc:
            raise ServiceUnavailable(str(exc)) from exc


def readiness_checks() -> list[HealthCheck]:
    return [
        Registry(),
        SharedCache(),
        Broker(),
        DriverReachable(kind="database"),
        DriverReachable(kind="storage"),
        DriverReachable(kind="search"),
    ]


@never_cache
def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
async def readiness(request: HttpRequest) -> JsonResponse:
    results = await asyncio.gather(*(check.get_result() for check in readiness_checks()))
    return readiness_response(results)


def readiness_response(results: list[HealthCheckResult]) -> JsonResponse:
    checks = {
        getattr(result.check, "name", repr(result.check)): (
            str(result.error) if result.error else "ok"
        )
        for result in results
    }
    failing = [name for name, outcome in checks.items() if outcome != "ok"]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)
