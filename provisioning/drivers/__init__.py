"""Resource drivers, chosen in settings.FARM_DRIVERS by dotted path."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from provisioning.drivers.base import DatabaseDriver, SearchDriver, StorageDriver, WikiResources


@cache
def _build(kind: str):
    config = settings.FARM_DRIVERS[kind]
    return import_string(config["class"])(**config["options"])


def database_driver() -> DatabaseDriver:
    return _build("database")


def storage_driver() -> StorageDriver:
    return _build("storage")


def search_driver() -> SearchDriver:
    return _build("search")


def locations(wiki: WikiResources, *, storage: bool = True) -> dict[str, dict[str, str]]:
    """Where MediaWiki finds the wiki's database (and storage): the one question about the
    drivers that the registry's exports ask."""
    found = {"database": database_driver().location(wiki)}
    if storage:
        found["storage"] = storage_driver().location(wiki)
    return found


def reset_drivers() -> None:
    """Forget built drivers (tests that change FARM_DRIVERS call this)."""
    _build.cache_clear()
