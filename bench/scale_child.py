"""One registry at 10 wikis and at farm scale (issue 10), in a process of its own.

`python -m bench.scale_child <config.json>` is started by bench/scale.py with the registry
chosen by the environment (no DATABASE_URL: SQLite in WAL mode in a temporary FARM_DATA_DIR;
DATABASE_URL: a MariaDB database of the run), the MariaDB driver on MediaWiki's schema, the
filesystem broker in the data dir (nothing consumes it: the engine runs here) and
filesystem storage. Progress goes to stderr; the last line on stdout is the JSON report.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bench import scale
from bench.stats import summarize


def progress(message: str) -> None:
    label = os.environ.get("BENCH_SCALE_LABEL", "?")
    print(f"[scale {label}] {message}", file=sys.stderr, flush=True)


def db_params() -> dict[str, Any]:
    parts = urlsplit(os.environ["FARM_DB_URL"])
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }


class ScaleRun:
    def __init__(self, config: dict[str, Any]) -> None:
        from bench.floor import FloorDatabases
        from bench.lifecycle import BenchWikis

        self.config = config
        self.token = config["token"]
        self.wikis = BenchWikis(self.token)
        self.floors = FloorDatabases(self.token)
        self.params = db_params()
        self.schema = os.environ["FARM_SCHEMA_SQL"]
        self.profiles: dict[str, str] = {}
        self.result: dict[str, Any] = {"label": config["label"]}

    # -- the run --------------------------------------------------------------------------

    def run(self) -> None:
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from bench.fixtures import ops_user
        from farm import publishing

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        self.result["registry"] = {
            "vendor": connection.vendor,
            "engine": settings.DATABASES["default"]["ENGINE"],
            "version": _server_version(connection),
            "migrate_seconds": round(time.perf_counter() - started, 2),
        }
        self.result["publish_window_s"] = publishing.publish_window()
        self.ops = ops_user()
        progress("small: floor and creates")
        self.result["small"] = self.measure_size(kind="e")
        progress("fixture")
        self.result["fixture"] = self.insert_fixture()
        progress("large: reads, floor and creates")
        self.result["large"] = self.measure_size(kind="z")
        progress("large: settings change on the family")
        self.result["large"]["settings_change"] = self.settings_change()
        self.profile_misses()
        self.result["profiles"] = self.profiles

    def measure_size(self, *, kind: str) -> dict[str, Any]:
        from farm.models import Wiki

        report: dict[str, Any] = {"registry_wikis_at_start": Wiki.objects.count()}
        if kind == "z":  # at scale, the reads first: the creates do not change them
            report["registry_wikis_at_reads"] = report["registry_wikis_at_start"]
            report["reads"] = self.measure_reads()
        report["floor"], create = self.floor_and_creates(kind=kind)
        report["create"] = create
        report["registry_wikis_at_end"] = Wiki.objects.count()
        if kind == "e":  # at 10 wikis, after the creates: their files are the ones to read
            report["registry_wikis_at_reads"] = report["registry_wikis_at_end"]
            report["reads"] = self.measure_reads()
        return report

    def floor_and_creates(self, *, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The floor and the creates taken in turns (floor, create, floor, create, ...), so
        that both see the same load on the database server and the disk: the machine's load
        drifts over a long run, and other suites may share it."""
        import statistics

        from bench import lifecycle
        from bench.floor import connect, load_schema_once, rendered_statements

        floors, samples = self.config["floor_samples"], self.config["samples"]
        statements = rendered_statements(self.schema)
        loads, drops, creates = [], [], []
        connection = connect(self.params)
        try:
            cursor = connection.cursor()
            load_schema_once(cursor, self.floors.new_name(), statements)  # warm the server
            # One create first, not counted: lazy imports, the drivers' first connections.
            lifecycle.create_with_engine(self.ops, self.wikis, samples=1, kind=kind)
            for number in range(max(floors, samples)):
                if number < floors:
                    load, drop = load_schema_once(cursor, self.floors.new_name(), statements)
                    loads.append(load)
                    drops.append(drop)
                if number < samples:
                    creates.append(
                        lifecycle.create_with_engine(self.ops, self.wikis, samples=1, kind=kind)
                    )
        finally:
            connection.close()
        floor = {
            "what": "CREATE DATABASE + schema load through one MySQLdb connection (DROP not "
            "timed), taken in turns with the creates",
            "statements": len(statements),
            "create_and_load": summarize(loads),
            "drop": summarize(drops),
        }
        steps = [sample["median_step_ms"] for sample in creates]
        names = list(dict.fromkeys(name for step in steps for name in step))
        median_steps = {
            name: round(statistics.median(step.get(name, 0.0) for step in steps), 1)
            for name in names
        }
        floor_median = floor["create_and_load"]["median_s"]
        accept_to_active = summarize([c["accept_to_active"]["median_s"] for c in creates])
        create = {
            "what": "services.wiki_create as ops, then engine.run_operation in this process",
            "accept": summarize([c["accept"]["median_ms"] / 1000 for c in creates], unit="ms"),
            "accept_to_active": accept_to_active,
            "median_step_ms": median_steps,
            "ratio_to_floor_median": round(accept_to_active["median_s"] / floor_median, 2),
            "step_ratio_to_floor_median": {
                name: round(ms / 1000 / floor_median, 3) for name, ms in median_steps.items()
            },
            # What the portal adds: everything but the database step, accept included.
            "portal_ms_median": round(statistics.median(_portal_ms(c) for c in creates), 1),
        }
        return floor, create

    # -- the fixture ---------------------------------------------------------------------

    def insert_fixture(self) -> dict[str, Any]:
        from bench.fixtures import REGISTRY_FAMILIES, bulk_registry
        from farm import exports
        from farm.models import Wiki
        from provisioning import placement

        family, count = self.config["family"], self.config["family_wikis"]
        started = time.perf_counter()
        fixture = bulk_registry(
            run_token=self.token,
            wikis=self.config["wikis"],
            families=REGISTRY_FAMILIES,
            fixed_family=(family, count),
        )
        fixture["insert_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        # The fixture's rows were never changed: nothing of theirs waits for a publish.
        fixture["marks_cleared"] = Wiki.objects.filter(
            pk__startswith=f"r{self.token}", export_dirty_since__isnull=False
        ).update(export_dirty_since=None)
        fixture["cluster_loads"] = placement.recount()
        fixture["recount_seconds"] = round(time.perf_counter() - started, 2)
        fixture["registry_wikis"] = Wiki.objects.count()
        progress(f"fixture of {fixture['registry_wikis']} wikis in {fixture['insert_seconds']}s")
        started = time.perf_counter()
        written = exports.write_exports()
        fixture["write_exports"] = {
            "what": "farm.exports.write_exports(): every wiki's file, then farm.json, "
            "siteconfig.json, hosts.json and the dblists, from an empty export dir",
            "seconds": round(time.perf_counter() - started, 2),
            "wiki_files": written["wiki_files"],
            "wiki_files_written": written["wiki_files_written"],
            "farm_files_changed": len(written["changed"]),
            "bytes": _tree_bytes(exports.export_dir()),
        }
        progress(f"write_exports in {fixture['write_exports']['seconds']}s")
        return fixture

    # -- reads ---------------------------------------------------------------------------

    def measure_reads(self) -> dict[str, Any]:
        from bench import registry
        from bench.lifecycle import api_client
        from farm import exports
        from farm.models import Wiki

        requests = self.config["requests"]
        client = api_client(self.ops)
        served = Wiki.objects.filter(state__in=exports.SERVED_STATES).order_by("id")
        step = max(1, served.count() // 20)
        sample_ids = list(served.values_list("id", flat=True))[::step][:20]
        wiki_urls = [f"/api/v1/exports/wikis/{wiki_id}.json" for wiki_id in sample_ids]
        family = self.config["family"]
        effective_wiki = (
            Wiki.objects.filter(family__name=family, state="active", tags__isnull=False)
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        ) or sample_ids[len(sample_ids) // 2]
        # The fixture's and the export's garbage is not a web process's: collect it first,
        # then count the collections that land inside each measurement (its tail).
        gc.collect()
        return {
            "wiki_export_304": with_gc(revalidate, client, wiki_urls, requests=requests),
            "farm_json_304": with_gc(
                revalidate, client, ["/api/v1/exports/farm.json"], requests=requests
            ),
            "list_api": with_gc(
                registry.list_api,
                self.ops,
                requests=requests,
                extra_filters=(f"?family={family}",),
            ),
            "effective_config": with_gc(
                registry.effective_config, self.ops, effective_wiki, requests=requests
            ),
        }

    # -- a settings change on a family of 10,000 wikis ------------------------------------

    def settings_change(self, *, value: str | None = None) -> dict[str, Any]:
        from bench.fixtures import FAMILY_SETTING
        from bench.lifecycle import api_client
        from farm import exports, publishing
        from farm.models import ExportPublisher, Wiki, WikiState

        family = self.config["family"]
        # What the creates left dirty is published first, so that only the change is.
        settle_started = time.perf_counter()
        settled = publishing.publish(respect_window=False)
        settle_seconds = time.perf_counter() - settle_started
        members = list(
            Wiki.objects.filter(family__name=family)
            .exclude(state=WikiState.PURGED)
            .order_by("id")
            .values_list("id", flat=True)
        )
        member_set = set(members)
        outside = (
            Wiki.objects.exclude(family__name=family)
            .filter(state=WikiState.ACTIVE)
            .order_by("id")
            .values_list("id", flat=True)[len(members) // 2]
        )
        outside_before = _stat_of(exports.wiki_file_path(outside))
        value = value or f"CC BY-SA 4.0 (bench {self.token}, {time.time():.6f})"
        url = f"/api/v1/config/blocks/family/{family}/settings/{FAMILY_SETTING}/"
        client = api_client(self.ops)
        writes_before = ExportPublisher.objects.get(pk=1).lists_writes
        started = time.perf_counter()
        response = client.put(url, {"value": value}, content_type="application/json")
        put_seconds = time.perf_counter() - started
        if response.status_code != 200 or not response.json()["changed"]:
            raise RuntimeError(f"PUT {url} answered {response.status_code}: {response.content}")
        dirty = Wiki.objects.filter(export_dirty_since__isnull=False).count()

        batches: list[tuple[float, int]] = []
        farm_files: list[float] = []
        original_wiki, original_farm = exports.write_wiki_files, exports.write_farm_files

        def write_wiki_files(wiki_ids, **kwargs):
            written = original_wiki(wiki_ids, **kwargs)
            batches.append((time.perf_counter(), len(member_set.intersection(wiki_ids))))
            return written

        def write_farm_files():
            farm_files.append(time.perf_counter())
            written = original_farm()
            farm_files.append(time.perf_counter())
            return written

        exports.write_wiki_files, exports.write_farm_files = write_wiki_files, write_farm_files
        try:
            started = time.perf_counter()
            published = publishing.publish(respect_window=False)
            publish_seconds = time.perf_counter() - started
        finally:
            exports.write_wiki_files, exports.write_farm_files = original_wiki, original_farm
        last_member_batch = max(t for t, members_in in batches if members_in)
        to_last_file = last_member_batch - started
        verify_started = time.perf_counter()
        holding = sum(
            1
            for wiki_id in members
            if json.loads(exports.wiki_file_path(wiki_id).read_bytes())["settings"].get(
                FAMILY_SETTING
            )
            == value
        )
        verify_seconds = time.perf_counter() - verify_started
        window = publishing.publish_window()
        return {
            "what": f"PUT {url} (Django test client, as ops), then "
            "farm.publishing.publish(respect_window=False) at once",
            "family": family,
            "family_wikis": len(members),
            "setting": FAMILY_SETTING,
            "settle_publish": {
                "what": "publish(respect_window=False) of what the creates left dirty, before "
                "the change: a few wiki files and every farm-wide file",
                "seconds": round(settle_seconds, 2),
                **{k: v for k, v in settled.items() if k != "farm_files_changed"},
            },
            "put_ms": round(put_seconds * 1000, 1),
            "wikis_marked_dirty": dirty,
            "publish_to_last_wiki_file_s": round(to_last_file, 2),
            "publish_wiki_files_s": round(batches[-1][0] - started, 2) if batches else None,
            "publish_farm_files_s": round(farm_files[1] - farm_files[0], 2) if farm_files else None,
            "publish_total_s": round(publish_seconds, 2),
            "publish_batches": len(batches),
            "published": {k: v for k, v in published.items() if k != "farm_files_changed"},
            "farm_files_changed": len(published.get("farm_files_changed", [])),
            "lists_writes_delta": ExportPublisher.objects.get(pk=1).lists_writes - writes_before,
            "publish_window_s": window,
            "live_everywhere_s": round(put_seconds + window + to_last_file, 2),
            "verified": {
                "files_holding_new_value": holding,
                "of": len(members),
                "all": holding == len(members),
                "read_seconds": round(verify_seconds, 2),
                "outside_wiki": outside,
                "outside_file_unchanged": _stat_of(exports.wiki_file_path(outside))
                == outside_before,
            },
        }

    # -- profiles of the targets missed --------------------------------------------------

    def profile_misses(self) -> None:
        """One more run of each measurement whose target was missed, under pyinstrument."""
        if not self.config["profile"]:
            return
        for size in ("small", "large"):
            self._profile_size(size, self.result[size])

    def _profile_size(self, size: str, report: dict[str, Any]) -> None:
        from bench import lifecycle, registry
        from bench.lifecycle import api_client

        requests = self.config["requests"]
        misses = scale.misses_of(report)
        reads = report["reads"]
        client = api_client(self.ops)
        family = self.config["family"]
        if "create" in misses:
            self._profile(
                f"{size}-create",
                lambda: lifecycle.create_with_engine(self.ops, self.wikis, samples=1, kind="p"),
            )
        for key, name in (
            ("wiki_export_304", "wiki-export-304"),
            ("farm_json_304", "farm-json-304"),
        ):
            if key in misses:
                etags = current_etags(client, reads[key]["urls"])[0]
                self._profile(
                    f"{size}-{name}",
                    functools.partial(revalidate_loop, client, etags, requests=requests),
                )
        if "list_api" in misses:
            self._explain_list(size)
            self._profile(
                f"{size}-list-api",
                lambda: registry.list_api(
                    self.ops, requests=requests, extra_filters=(f"?family={family}",)
                ),
            )
        if "effective_config" in misses:
            wiki = reads["effective_config"]["wiki"]
            self._profile(
                f"{size}-effective-config",
                lambda: registry.effective_config(self.ops, wiki, requests=requests),
            )
        if {"settings_put", "settings_publish"} & misses:
            self._profile_settings_change()

    def _explain_list(self, size: str) -> None:
        """Each list query's SQL, time and plan (the profile only says "in the database")."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from bench.lifecycle import api_client
        from bench.registry import LIST_FILTERS
        from farm.models import Wiki

        client = api_client(self.ops)
        deep_page = str(max(1, Wiki.objects.count() // 50 // 2))
        filters = [q.replace("{deep_page}", deep_page) for q in LIST_FILTERS]
        filters.append(f"?family={self.config['family']}")
        explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        lines = [f"registry: {connection.vendor}; queries of 5 ms or more are explained", ""]
        for query in filters:
            url = f"/api/v1/wikis/{query}"
            client.get(url)  # warm
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                client.get(url)
                elapsed = time.perf_counter() - started
            lines.append(f"== GET {url}: {elapsed * 1000:.1f} ms, {len(captured)} queries")
            for executed in captured.captured_queries:
                sql, seconds = executed["sql"], float(executed["time"])
                cut = sql.find(" FROM ")
                shown = sql if cut < 0 or cut < 160 else sql[:120] + " ..." + sql[cut:]
                lines.append(f"  {seconds * 1000:7.1f} ms  {shown[:1500]}")
                if seconds >= 0.005 and sql.startswith("SELECT"):
                    with connection.cursor() as cursor:
                        cursor.execute(explain + sql)
                        lines.extend(f"      plan: {row}" for row in cursor.fetchall())
            lines.append("")
        path = Path(self.config["results_dir"]) / f"{self.config['prefix']}-{size}-list-queries.txt"
        path.write_text("\n".join(lines) + "\n")
        self.profiles[f"{size}-list-queries"] = str(path)

    def _profile_settings_change(self) -> None:
        """The change again with another value: the PUT and the publish profiled apart."""
        from bench.fixtures import FAMILY_SETTING
        from bench.lifecycle import api_client
        from farm import publishing

        publishing.publish(respect_window=False)
        url = f"/api/v1/config/blocks/family/{self.config['family']}/settings/{FAMILY_SETTING}/"
        client = api_client(self.ops)
        value = f"CC BY-SA 4.0 (bench {self.token}, profiled)"
        self._profile(
            "large-settings-put",
            lambda: client.put(url, {"value": value}, content_type="application/json"),
        )
        self._profile("large-settings-publish", lambda: publishing.publish(respect_window=False))

    def _profile(self, name: str, function) -> None:
        from bench.profiling import profile

        path = Path(self.config["results_dir"]) / f"{self.config['prefix']}-{name}.txt"
        progress(f"profiling {name}")
        profile(function, path)
        self.profiles[name] = str(path)

    # -- cleanup -------------------------------------------------------------------------

    def cleanup(self) -> dict[str, Any]:
        """Drop the databases of the wikis this child created and the floor's; nothing else."""
        from django.apps import apps

        from bench.lifecycle import drop_wiki_databases

        dropped = drop_wiki_databases(self.wikis.created) if apps.ready else 0
        self.floors.drop_all(self.params)
        return {
            "wikis_created": len(self.wikis.created),
            "wiki_databases_dropped": dropped,
            "floor_databases_dropped": len(self.floors.names),
        }


def _portal_ms(create: dict[str, Any]) -> float:
    steps = create["median_step_ms"]
    return create["accept"]["median_ms"] + sum(
        ms for name, ms in steps.items() if name != "create_database"
    )


def with_gc(function, *args, **kwargs) -> dict[str, Any]:
    """Run a measurement and add how many garbage collections of each generation ran inside
    it and their total pause: the usual cause of a p95 far above the median."""
    counts, pauses, started = [0, 0, 0], [0.0, 0.0, 0.0], {}

    def callback(phase: str, info: dict) -> None:
        generation = info["generation"]
        if phase == "start":
            started[generation] = time.perf_counter()
        elif generation in started:
            counts[generation] += 1
            pauses[generation] += time.perf_counter() - started.pop(generation)

    gc.callbacks.append(callback)
    try:
        report = function(*args, **kwargs)
    finally:
        gc.callbacks.remove(callback)
    report["gc"] = {
        "collections": dict(zip(("gen0", "gen1", "gen2"), counts, strict=True)),
        "pause_ms": {
            name: round(pause * 1000, 1)
            for name, pause in zip(("gen0", "gen1", "gen2"), pauses, strict=True)
        },
        "tracked_objects": len(gc.get_objects()),
    }
    return report


def revalidate(client, urls: list[str], *, requests: int) -> dict[str, Any]:
    """GET each URL once (200, its ETag), then If-None-Match round the URLs: all 304."""
    etags, full, size = current_etags(client, urls)
    return {
        "what": "GET with If-None-Match (Django test client, as ops): 304",
        "urls": urls,
        "status_304": summarize(
            revalidate_loop(client, etags, requests=requests), unit="ms", digits=2
        ),
        "status_200": summarize(full, unit="ms", digits=1),
        "bytes": size,
    }


def current_etags(client, urls: list[str]) -> tuple[dict[str, str], list[float], int]:
    from bench.registry import body_of

    etags, full, body = {}, [], b""
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        body = body_of(response)
        full.append(time.perf_counter() - started)
        if response.status_code != 200 or not response.get("ETag"):
            raise RuntimeError(f"GET {url} answered {response.status_code}: {body[:300]}")
        etags[url] = response["ETag"]
    return etags, full, len(body)


def revalidate_loop(client, etags: dict[str, str], *, requests: int) -> list[float]:
    samples = []
    for url in itertools.islice(itertools.cycle(etags), requests):
        started = time.perf_counter()
        response = client.get(url, headers={"If-None-Match": etags[url]})
        samples.append(time.perf_counter() - started)
        if response.status_code != 304:
            raise RuntimeError(f"GET {url} with its ETag answered {response.status_code}")
    return samples


def _stat_of(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _tree_bytes(root: Path) -> int:
    return sum(entry.stat().st_size for entry in root.rglob("*") if entry.is_file())


def _server_version(connection) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
        else:
            cursor.execute("SELECT VERSION()")
        return cursor.fetchone()[0]


def main(config_path: str) -> int:
    import django

    config = json.loads(Path(config_path).read_text())
    django.setup()
    run = ScaleRun(config)
    failed = False
    try:
        run.run()
    except Exception:  # still clean up, and report what was measured
        run.result["error"] = traceback.format_exc()
        failed = True
    finally:
        try:
            run.result["cleanup"] = run.cleanup()
        except Exception:
            run.result["cleanup_error"] = traceback.format_exc()
            failed = True
    print(json.dumps(run.result))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
