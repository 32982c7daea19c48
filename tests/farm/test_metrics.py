"""Prometheus metrics, scraped from the real /metrics: a create moves the queue gauges, the
operation counters and the step histogram; the sweeper's re-queues count; the endpoint
wants its token in production; multiprocess mode adds up other processes' counters."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from farm.models import Wiki
from provisioning import engine, services
from provisioning.models import Operation, OperationState
from tests.provisioning.helpers import run_pending
from tests.provisioning.test_faults import inject_fault

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def scrape(settings):
    settings.DEBUG = False
    settings.FARM_METRICS_TOKEN = TOKEN

    def scrape() -> dict[tuple[str, tuple], float]:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    return scrape


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_create_moves_the_right_metrics(scrape, farm_drivers, ops_user):
    before = scrape()
    operation = services.wiki_create(
        actor=ops_user, wiki_id="metered", family="default", sitename="M"
    )

    queued = scrape()
    assert value(queued, "farm_operations_open", state="pending", kind="create") == 1
    assert value(queued, "farm_operations_open", state="running", kind="create") == 0
    assert value(queued, "farm_operation_oldest_pending_age_seconds") > 0
    assert (
        value(queued, "farm_wikis", state="provisioning", family="default", size_class="unknown")
        == 1
    )
    assert value(queued, "farm_registry_up") == 1

    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED
    after = scrape()

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("farm_operations_finished_total", kind="create", outcome="succeeded") == 1
    assert moved("farm_operations_finished_total", kind="create", outcome="failed") == 0
    for step in [step["name"] for step in operation.steps]:
        assert moved("farm_operation_step_duration_seconds_count", kind="create", step=step) == 1
    assert value(after, "farm_operations_open", state="pending", kind="create") == 0
    assert value(after, "farm_operation_oldest_pending_age_seconds") == 0
    assert value(after, "farm_wikis", state="active", family="default", size_class="unknown") == 1
    assert value(after, "farm_export_publish_lag_seconds") == 0  # run_pending published
    # django-prometheus: the scrapes themselves, and the registry's queries.
    assert moved("django_http_responses_total_by_status_total", status="200") >= 2
    assert moved("django_db_execute_total", alias="default", vendor=connection.vendor) > 0


def test_a_failed_step_counts_as_a_failed_operation(scrape, farm_drivers, ops_user, monkeypatch):
    before = scrape()
    inject_fault(monkeypatch, "create", "create_storage", after_work=False)
    services.wiki_create(actor=ops_user, wiki_id="broken", family="default", sitename="B")
    run_pending()
    after = scrape()
    failed = ("farm_operations_finished_total", (("kind", "create"), ("outcome", "failed")))
    assert after[failed] - before.get(failed, 0) == 1
    assert value(after, "farm_operations_open", state="failed", kind="create") == 1


def test_publish_lag_shows_an_unpublished_change(scrape, farm_drivers, ops_user):
    from farm.services import wiki_update

    services.wiki_create(actor=ops_user, wiki_id="lagging", family="default", sitename="L")
    run_pending()
    Wiki.objects.filter(pk="lagging").update(export_dirty_since=None)
    wiki_update(actor=ops_user, wiki_id="lagging", sitename="Later")
    Wiki.objects.filter(pk="lagging").update(
        export_dirty_since=timezone.now() - timedelta(seconds=90)
    )
    assert value(scrape(), "farm_export_publish_lag_seconds") >= 90


def test_the_sweeper_counts_its_requeues(scrape, farm_drivers, ops_user, settings, monkeypatch):
    from provisioning import tasks

    monkeypatch.setattr(tasks.run_operation_task, "delay", lambda *args: None)
    monkeypatch.setattr(tasks.run_operation_task, "apply_async", lambda *a, **k: None)
    before = scrape()
    lost = services.wiki_create(actor=ops_user, wiki_id="lostmsg", family="default", sitename="L")
    stuck = services.wiki_create(actor=ops_user, wiki_id="stuckop", family="default", sitename="S")
    long_ago = timezone.now() - timedelta(hours=2)
    Operation.objects.filter(pk=lost.pk).update(enqueued_at=long_ago)
    assert engine.claim(stuck.pk) is not None
    Operation.objects.filter(pk=stuck.pk).update(heartbeat_at=long_ago, enqueued_at=timezone.now())
    assert set(engine.sweep_stuck_operations()) == {str(lost.pk), str(stuck.pk)}
    after = scrape()
    for reason in ("lost_message", "no_heartbeat"):
        name = "farm_operations_requeued_total"
        assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1


def test_metrics_want_the_token_in_production(settings):
    settings.DEBUG = False
    settings.FARM_METRICS_TOKEN = ""
    refused = Client().get("/metrics")
    assert refused.status_code == 403
    assert b"FARM_METRICS_TOKEN" in refused.content

    settings.FARM_METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_are_open_in_development(settings):
    settings.DEBUG = True
    settings.FARM_METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"farm_registry_up 1.0" in response.content


def test_multiprocess_mode_adds_up_every_process(scrape, tmp_path, monkeypatch):
    """What a worker pool does: other processes count into PROMETHEUS_MULTIPROC_DIR, and
    the exporter reading it shows their sum."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    count_once = (
        "import django; django.setup()\n"
        "from farm import metrics\n"
        "metrics.operation_finished('archive', 'succeeded')\n"
        "metrics.operation_requeued('no_heartbeat')\n"
    )
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", count_once],
            cwd=django_settings.BASE_DIR,
            env={
                **os.environ,
                "PROMETHEUS_MULTIPROC_DIR": str(folder),
                "DJANGO_SETTINGS_MODULE": "portal.settings",
                "FARM_DATA_DIR": str(tmp_path / "data"),
            },
            check=True,
            timeout=60,
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    samples = scrape()
    finished = value(samples, "farm_operations_finished_total", kind="archive", outcome="succeeded")
    assert finished == 2
    assert value(samples, "farm_operations_requeued_total", reason="no_heartbeat") == 2
    assert value(samples, "farm_registry_up") == 1  # the registry gauges are still there


def test_runs_show_by_state_with_their_items(scrape, farm_drivers, ops_user):
    from provisioning import runs
    from tests.provisioning.helpers import run_runs

    for wiki_id in ("metra", "metrb"):
        services.wiki_create(actor=ops_user, wiki_id=wiki_id, family="default", sitename="M")
    run_pending()
    run = runs.run_create(actor=ops_user, kind="backup", selection={"all": True})
    samples = scrape()
    assert value(samples, "farm_runs", kind="backup", state="pending") == 1
    queued = value(
        samples, "farm_run_items", run=run.pk, kind="backup", state="queued", size_class="unknown"
    )
    assert queued == 2
    run_runs()
    samples = scrape()
    assert value(samples, "farm_runs", kind="backup", state="finished") == 1
    assert not [key for key in samples if key[0] == "farm_run_items"]  # ended: no items shown
