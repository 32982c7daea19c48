"""Gunicorn reads this file from its working folder (the image's /app) by itself.

Its own lines (start-up, worker timeouts, the access log if switched on) are JSON like the
portal's in production (docs/logging.md), the access lines with the request id.

Metrics (farm/metrics.py) with several gunicorn workers need prometheus_client's
multiprocess mode: every worker writes its counters to files in PROMETHEUS_MULTIPROC_DIR
and /metrics, answered by any one worker, adds them all up. The folder must be empty when
the server starts and belong to this server alone; without the variable this master makes
a fresh one. It is set here, before any worker imports prometheus_client.
"""

import os
import shutil
import tempfile
from pathlib import Path

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir:
    # A restart must not add the last run's counts to this one's.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True)
else:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="portal-metrics-")


_debug = os.environ.get("DJANGO_DEBUG", "").lower() in {"1", "true", "yes", "on"}
if (os.environ.get("DJANGO_LOG_FORMAT") or ("text" if _debug else "json")) == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "portal.logs.ContextFilter"}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": "time",
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in ("gunicorn.error", "gunicorn.access")
        },
    }


def child_exit(server, worker):
    """A worker ended: drop its live gauges; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
