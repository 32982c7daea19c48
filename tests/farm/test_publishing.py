"""Incremental, coalesced publishing of the per-wiki export files: a change reaches exactly
the affected wikis' files, a burst causes one publish, a killed publish resumes, a wiki is
never active without its file, and the API serves the files with cheap conditional GETs."""

import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from farm import config, exports, publishing, services
from farm.models import ClusterLoad, ExportMark, ExportPublisher, Wiki, WikiState
from farm.services import tag_create
from provisioning import services as lifecycle
from provisioning.models import Operation, OperationState
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db

WIKIS = ("one", "two", "three", "four")


@pytest.fixture
def enqueued(monkeypatch):
    """The publish tasks that would go to the broker (none is run)."""
    from farm.tasks import publish_exports_task

    calls = []
    monkeypatch.setattr(publish_exports_task, "apply_async", lambda **kw: calls.append(kw))
    return calls


@pytest.fixture
def farm(farm_drivers, settings, ops_user, admin_user_a, enqueued):
    """one, two (tag t1) in family default; three (tag t2), four in family other."""
    settings.FARM_WIKI_URL = "https://{id}.wikis.example.org/"
    services.family_create(actor=ops_user, name="other")
    tag_create(actor=ops_user, name="t1")
    tag_create(actor=ops_user, name="t2")
    for wiki_id, family, tags in (
        ("one", "default", ["t1"]),
        ("two", "default", ["t1"]),
        ("three", "other", ["t2"]),
        ("four", "other", []),
    ):
        lifecycle.wiki_create(
            actor=ops_user, wiki_id=wiki_id, family=family, sitename=wiki_id, tags=tags
        )
    run_pending()
    assert not Wiki.objects.filter(export_dirty_since__isnull=False).exists()
    return ops_user


def wiki_file(wiki_id: str) -> dict:
    return json.loads(exports.wiki_file_path(wiki_id).read_bytes())


def file_stats() -> dict[str, tuple[int, int]]:
    stats = {}
    for wiki_id in WIKIS:
        stat = exports.wiki_file_path(wiki_id).stat()
        stats[wiki_id] = (stat.st_ino, stat.st_mtime_ns)
    return stats


@pytest.mark.parametrize(
    ("layer", "target", "affected"),
    [
        ("default", "", {"one", "two", "three", "four"}),
        ("family", "other", {"three", "four"}),
        ("tag", "t1", {"one", "two"}),
        ("wiki", "three", {"three"}),
    ],
)
def test_a_change_at_each_layer_reaches_exactly_the_affected_files(
    farm, django_capture_on_commit_callbacks, enqueued, layer, target, affected
):
    before = file_stats()
    with django_capture_on_commit_callbacks(execute=True):
        config.config_set(
            actor=farm, layer=layer, target=target, setting="wgRightsText", value="New"
        )
    # A farm-wide block writes one mark in the request; the publisher expands it.
    assert ExportMark.objects.count() == (0 if layer == "wiki" else 1)
    publishing.expand_marks()
    dirty = set(Wiki.objects.filter(export_dirty_since__isnull=False).values_list("id", flat=True))
    assert dirty == affected
    assert len(enqueued) == 1  # one publish requested, a window from now
    assert enqueued[0]["countdown"] == publishing.publish_window()

    result = publishing.publish(respect_window=False)
    assert result["wikis"] == len(affected) and result["wiki_files_written"] == len(affected)
    after = file_stats()
    for wiki_id in WIKIS:
        holds = wiki_file(wiki_id)["settings"].get("wgRightsText") == "New"
        assert holds is (wiki_id in affected), wiki_id
        assert (after[wiki_id] == before[wiki_id]) is (wiki_id not in affected), wiki_id
    assert not Wiki.objects.filter(export_dirty_since__isnull=False).exists()
    farm_json = json.loads((exports.export_dir() / exports.FARM_FILE).read_bytes())
    assert farm_json["wikis"]["three"]["settings"].get("wgRightsText") == (
        "New" if "three" in affected else None
    )


def test_a_burst_of_changes_requests_one_publish(farm, django_capture_on_commit_callbacks):
    from farm.tasks import publish_exports_task

    calls = []
    publish_exports_task.apply_async = lambda **kw: calls.append(kw)
    writes_before = ExportPublisher.objects.get(pk=1).lists_writes
    for n in range(200):
        with django_capture_on_commit_callbacks(execute=True):
            config.config_set(
                actor=farm,
                layer="wiki",
                target=WIKIS[n % 4],
                setting="wgRightsText",
                value=f"v{n}",
            )
    assert len(calls) == 1
    publishing.publish(respect_window=False)
    assert ExportPublisher.objects.get(pk=1).lists_writes == writes_before + 1
    assert wiki_file("four")["settings"]["wgRightsText"] == "v199"
    # Within the window after that rewrite, a publish comes back later instead.
    config.config_set(actor=farm, layer="wiki", target="one", setting="wgRightsText", value="x")
    assert "retry_in" in publishing.publish()
    assert wiki_file("one")["settings"]["wgRightsText"] == "v196"


def test_a_killed_publish_leaves_the_marks_and_the_next_one_finishes(farm, monkeypatch):
    config.config_set(actor=farm, layer="default", setting="wgRightsText", value="Resumed")
    monkeypatch.setattr(exports, "PUBLISH_BATCH", 2)
    real_write = exports.write_wiki_files
    batches = []

    def killed_after_one_batch(wiki_ids, **kwargs):
        if batches:
            raise SystemExit("worker killed")
        batches.append(wiki_ids)
        return real_write(wiki_ids, **kwargs)

    monkeypatch.setattr(exports, "write_wiki_files", killed_after_one_batch)
    with pytest.raises(SystemExit):
        publishing.publish(respect_window=False)
    assert not ExportMark.objects.exists()  # expanded before the first batch
    dirty = set(Wiki.objects.filter(export_dirty_since__isnull=False).values_list("id", flat=True))
    assert dirty == set(WIKIS) - set(batches[0]) and len(dirty) == 2
    # The killed publisher released nothing by hand: its lease would expire; here the
    # finally clause gave it back, so the next publish runs at once.
    monkeypatch.setattr(exports, "write_wiki_files", real_write)
    result = publishing.publish(respect_window=False)
    assert result["wikis"] == 2
    assert all(wiki_file(w)["settings"]["wgRightsText"] == "Resumed" for w in WIKIS)


def test_a_change_during_a_publish_keeps_its_mark(farm, monkeypatch):
    config.config_set(actor=farm, layer="wiki", target="one", setting="wgRightsText", value="A")
    real_write = exports.write_wiki_files

    def write_then_change(wiki_ids, **kwargs):
        written = real_write(wiki_ids, **kwargs)
        if not kwargs:  # the publish's batch: a change lands after it read the registry
            config.config_set(
                actor=farm, layer="wiki", target="one", setting="wgRightsText", value="B"
            )
        return written

    monkeypatch.setattr(exports, "write_wiki_files", write_then_change)
    result = publishing.publish(respect_window=False)
    # The first batch's mark was not cleared (the serial moved on), so the same publish
    # took the wiki again and wrote what the change gave.
    assert result["wikis"] == 2
    assert Wiki.objects.get(pk="one").export_dirty_since is None
    assert wiki_file("one")["settings"]["wgRightsText"] == "B"


def test_a_held_lease_makes_the_publish_come_back_later(farm):
    config.config_set(actor=farm, layer="wiki", target="one", setting="wgRightsText", value="L")
    assert publishing._take_lease("someone-else")
    assert "retry_in" in publishing.publish(respect_window=False)
    publishing._release_lease("someone-else")
    assert publishing.publish(respect_window=False)["wikis"] == 1
    assert publishing.publish(respect_window=False) == {"idle": True}


def test_the_wiki_file_says_what_mediawiki_needs(farm, settings):
    one = wiki_file("one")
    assert one["format"] == exports.WIKI_FILE_FORMAT and one["id"] == "one"
    assert one["state"] == "active" and one["read_only"] is False
    assert one["read_only_reason"] is None
    assert one["url"] == "https://one.wikis.example.org/"
    assert one["host"] == "one.wikis.example.org"
    assert one["database"] == {
        "type": "sqlite",
        "name": "wiki_one",
        "cluster": "default",
        "dir": str((settings.DATA_DIR / "databases").resolve()),
    }
    assert one["storage"] == {
        "type": "filesystem",
        "path": f"{(settings.DATA_DIR / 'storage' / 'wikis' / 'one').resolve()}/",
    }
    assert one["family"] == "default" and one["tags"] == ["t1"]
    assert one["settings"]["wgSitename"] == "one"
    assert "wgGroupPermissions" in one["merge_settings"]
    hosts = json.loads((exports.export_dir() / exports.HOSTS_FILE).read_bytes())
    assert hosts["hosts"]["three.wikis.example.org"] == "three"
    # An ops setting wgReadOnly makes the wiki read-only with that reason.
    config.config_set(
        actor=farm, layer="wiki", target="two", setting="wgReadOnly", value="Closed for good"
    )
    publishing.publish(respect_window=False)
    two = wiki_file("two")
    assert two["read_only"] is True and two["read_only_reason"] == "Closed for good"
    lists = exports.export_dir() / exports.DBLIST_DIR
    assert "two\n" in (lists / "closed.dblist").read_text()


def test_lifecycle_states_reach_the_file(farm):
    lifecycle.wiki_archive(actor=farm, wiki_id="four")
    run_pending()
    four = wiki_file("four")
    assert four["state"] == "archived" and four["read_only"] is True
    assert "four" in (exports.export_dir() / "dblists" / "archived.dblist").read_text()
    lifecycle.wiki_purge(actor=farm, wiki_id="four")
    run_pending()
    assert wiki_file("four") == {
        "format": exports.WIKI_FILE_FORMAT,
        "id": "four",
        "state": "purged",
    }
    assert ClusterLoad.objects.get(name="default").wikis == 3


def test_a_wiki_is_never_active_without_its_file(farm, monkeypatch):
    def disk_full(files):
        raise OSError("No space left on device")

    monkeypatch.setattr(exports, "_replace_all", disk_full)
    lifecycle.wiki_create(actor=farm, wiki_id="five", family="default", sitename="Five")
    run_pending()
    wiki = Wiki.objects.get(pk="five")
    assert wiki.state == WikiState.PROVISIONING
    operation = Operation.objects.get(wiki_ref="five")
    assert operation.state == OperationState.FAILED and "No space left" in operation.error
    assert not exports.wiki_file_path("five").exists()
    monkeypatch.undo()
    lifecycle.operation_retry(actor=farm, operation_id=operation.pk)
    run_pending()
    assert Wiki.objects.get(pk="five").state == WikiState.ACTIVE
    assert wiki_file("five")["state"] == "active"


def test_an_abandoned_create_removes_the_file_activate_wrote(farm, monkeypatch):
    from provisioning import steps

    def crash_after_the_file(ctx):
        publishing.publish_wiki_now(ctx.wiki.id, as_state=WikiState.ACTIVE)
        raise steps.PermanentError("crashed before the wiki turned active")

    monkeypatch.setitem(steps.STEP_FUNCTIONS["create"], "activate", crash_after_the_file)
    lifecycle.wiki_create(actor=farm, wiki_id="six", family="default", sitename="Six")
    run_pending()
    assert exports.wiki_file_path("six").exists()
    operation = Operation.objects.get(wiki_ref="six")
    lifecycle.operation_abandon(actor=farm, operation_id=operation.pk)
    run_pending()
    assert not Wiki.objects.filter(pk="six").exists()
    assert not exports.wiki_file_path("six").exists()
    assert ClusterLoad.objects.get(name="default").wikis == 4


def test_tag_edits_through_the_service_and_the_api_reach_the_file(farm, admin_user_a):
    services.wiki_update(actor=farm, wiki_id="four", tags=["t1", "t2"])
    publishing.publish(respect_window=False)
    assert wiki_file("four")["tags"] == ["t1", "t2"]
    client = APIClient()
    client.force_authenticate(farm)
    response = client.patch("/api/v1/wikis/four/", {"tags": []}, format="json")
    assert response.status_code == 200, response.content
    publishing.publish(respect_window=False)
    assert wiki_file("four")["tags"] == []
    assert (exports.export_dir() / "dblists" / "tag-t1.dblist").read_text() == "one\ntwo\n"


def test_tag_edits_through_the_cli_reach_the_file(farm):
    call_command(
        "wiki", "--actor", "opsuser", "update", "three", "--tag", "t1", "--sitename", "Three again"
    )
    publishing.publish(respect_window=False)
    three = wiki_file("three")
    assert three["tags"] == ["t1"] and three["settings"]["wgSitename"] == "Three again"


def test_the_api_serves_the_wiki_file_with_a_cheap_304(farm, auditor_user, admin_user_a):
    client = APIClient()
    client.force_authenticate(auditor_user)
    first = client.get("/api/v1/exports/wikis/one.json")
    assert first.status_code == 200
    assert json.loads(b"".join(first.streaming_content)) == wiki_file("one")
    again = client.get("/api/v1/exports/wikis/one.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["ETag"] == first["ETag"]
    # An unchanged rewrite keeps the ETag; a change gives a new one.
    call_command("export_farm")
    same = client.get("/api/v1/exports/wikis/one.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert same.status_code == 304
    config.config_set(actor=farm, layer="wiki", target="one", setting="wgRightsText", value="E")
    publishing.publish(respect_window=False)
    changed = client.get("/api/v1/exports/wikis/one.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    missing = client.get("/api/v1/exports/wikis/nosuch.json")
    assert missing.status_code == 404 and missing.json()["field"] == "wiki_id"
    hosts = client.get("/api/v1/exports/hosts.json")
    assert hosts.status_code == 200
    client.force_authenticate(admin_user_a)
    assert client.get("/api/v1/exports/wikis/one.json").status_code == 403


def test_export_farm_rewrites_everything_and_checks(farm, capsys):
    exports.wiki_file_path("two").unlink()
    with pytest.raises(Exception, match="wikis/two.json"):
        call_command("export_farm", "--check")
    call_command("export_farm")
    assert "4 wiki files, 1 changed" in capsys.readouterr().out
    call_command("export_farm", "--check")
    assert wiki_file("two")["id"] == "two"


def test_placement_reads_the_cluster_counts(farm):
    assert ClusterLoad.objects.get(name="default").wikis == 4
    from provisioning import placement

    assert placement.recount() == {"default": 4}
