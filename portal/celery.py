"""The Celery application; its configuration lives in portal.settings (CELERY_*)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers log as the web does (LOGGING, docs/logging.md), not in Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.worker_init.connect
def start_metrics_exporter(**kwargs) -> None:
    """The worker's events on a port of its own (farm/metrics.py), before its pool forks."""
    from django.conf import settings

    if settings.FARM_WORKER_METRICS_PORT:
        from farm import metrics

        metrics.start_worker_exporter(settings.FARM_WORKER_METRICS_PORT)


@signals.worker_process_shutdown.connect
def forget_pool_process(pid: int, **kwargs) -> None:
    from farm import metrics

    metrics.mark_process_dead(pid)
