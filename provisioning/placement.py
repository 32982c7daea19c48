"""Placement: the database cluster a new wiki goes to (DESIGN section 8).

The registry keeps how many live wikis each cluster holds (ClusterLoad), changed in the
same transaction as the create, the abandon or the purge that changes it, so placing a wiki
reads a row per cluster however large the farm is, instead of counting every wiki.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, F

from farm.models import ClusterLoad, Wiki
from provisioning.drivers import database_driver


def choose() -> str:
    """The cluster the database driver picks for a new wiki, given the current loads."""
    return database_driver().choose_cluster(dict(ClusterLoad.objects.values_list("name", "wikis")))


def take(cluster: str) -> None:
    """Count one more wiki on `cluster` (inside the create's transaction)."""
    if not ClusterLoad.objects.filter(name=cluster).update(wikis=F("wikis") + 1):
        with transaction.atomic():  # a cluster's first wiki
            load, _ = ClusterLoad.objects.select_for_update().get_or_create(name=cluster)
            ClusterLoad.objects.filter(name=cluster).update(wikis=F("wikis") + 1)


def release(cluster: str) -> None:
    """Count one wiki fewer on `cluster` (a purge's tombstone, an abandoned create)."""
    ClusterLoad.objects.filter(name=cluster, wikis__gt=0).update(wikis=F("wikis") - 1)


@transaction.atomic
def recount() -> dict[str, int]:
    """Rebuild the loads from the registry (after an import, or to check them)."""
    counted = Wiki.objects.live().values_list("cluster").annotate(n=Count("pk"))
    loads = dict(counted.values_list("cluster", "n"))
    ClusterLoad.objects.exclude(name__in=list(loads)).delete()
    for name, wikis in loads.items():
        ClusterLoad.objects.update_or_create(name=name, defaults={"wikis": wikis})
    return loads
