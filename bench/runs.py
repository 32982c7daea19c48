"""Farm-wide runs against their raw floors (issue 11, DESIGN sections 8 and 10):
`.venv/bin/python -m bench.runs [--wikis 200 --migrate-wikis 500 --parallelism 2 ...]`.

Everything goes through the real path: `runs.run_create` as ops, the dispatch and the
operations on real Celery worker processes consuming the queue `runs` (Redis broker), the
wikis' databases on MariaDB, the registry on MariaDB (`--registry mariadb`, the default: a
database `benchreg_<token>` of this run) or SQLite (`--registry sqlite`). Each figure sits
next to its raw floor measured in the same run, with the same parallelism P:

1. backup run of the data wikis vs P `mariadb-dump --single-transaction --quick | gzip`
   pipelines (floor before and after the run);
2. migration run of one `ALTER TABLE page ADD COLUMN` over the schema-only wikis vs P
   processes with one connection each (floor before and after);
3. self-service create latency (API -> Redis -> the default-queue worker -> active) on an
   idle farm, then while a backup run of the data wikis occupies the `runs` workers;
4. restore as a new wiki id (`restores.wiki_clone`) of a 300-page and a 3,000-page wiki in
   a child process (seconds, VmHWM) vs `mariadb < dump` of the same dump.

JSON on stdout and in bench/results/<timestamp>-runs.json; progress on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import environment, raw
from bench.environment import BASE_DIR, MEDIAWIKI_SCHEMA, LoadSampler
from bench.stats import summarize

RESULTS_DIR = BASE_DIR / "bench" / "results"
PHASES = ("backup", "migrate", "create", "restore")
DATA_FAMILY, SCHEMA_FAMILY, LARGE_FAMILY = "benchdata", "benchschema", "benchlarge"
REGISTRY_DATABASE_PREFIX = "benchreg_"
MIGRATION_NAME = "bench-page-column"
RUN_TIMEOUT_SECONDS = 900
CREATE_TIMEOUT_SECONDS = 600
SIZE_CLASSES = ("small", "medium", "large", "xlarge", "unknown")


def progress(message: str) -> None:
    print(f"[bench.runs {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.runs", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--phases", default=",".join(PHASES), help=f"any of {','.join(PHASES)} (all)")
    add("--wikis", type=int, default=200, help="data wikis of the backup runs (200)")
    add("--pages", type=int, default=300, help="pages of each data wiki (300)")
    add("--revisions", type=int, default=1000, help="revisions of each data wiki (1000)")
    add("--migrate-wikis", type=int, default=500, help="schema-only wikis migrated (500)")
    add("--parallelism", type=int, default=2, help="P: run parallelism = runs worker slots (2)")
    add("--create-samples", type=int, default=15, help="creates idle and during the run (15)")
    add("--create-spacing", type=float, default=1.0, help="seconds between creates (1.0)")
    add("--large-pages", type=int, default=3000, help="pages of the large restored wiki")
    add("--large-revisions", type=int, default=10000, help="its revisions (10000)")
    add("--restore-samples", type=int, default=3, help="clones and raw restores per size (3)")
    add("--registry", choices=("mariadb", "sqlite"), default="mariadb")
    add("--db-url", default=os.environ.get("BENCH_DB_URL", "mysql://root:@127.0.0.1:3306/"))
    add("--schema-sql", type=Path, default=MEDIAWIKI_SCHEMA)
    add("--no-profile", action="store_true", help="no in-process profile of a missed target")
    add("--quick", action="store_true", help="tiny sizes, to check the bench itself runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.wikis, args.pages, args.revisions, args.migrate_wikis = 8, 30, 100, 12
        args.create_samples, args.create_spacing = 3, 0.2
        args.large_pages, args.large_revisions, args.restore_samples = 300, 1000, 1
    args.phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(args.phases) - set(PHASES)
    if unknown or args.parallelism < 1:
        raise SystemExit(f"unknown phases {sorted(unknown)} or parallelism < 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.schema_sql.is_file():
        raise SystemExit(f"{args.schema_sql} is missing: apt-get install -y mediawiki")
    token = secrets.token_hex(3)
    started_at = datetime.now(UTC)
    env = environment.prepare(db_url=args.db_url, broker="redis", schema_sql=args.schema_sql)
    env.apply()
    registry_db = None
    if args.registry == "mariadb":
        registry_db = f"{REGISTRY_DATABASE_PREFIX}{token}"
        _server(env.db_params(), f"CREATE DATABASE {raw.quote_identifier(registry_db)} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
        parts = args.db_url.split("//", 1)[1].split("/", 1)[0]
        os.environ["DATABASE_URL"] = f"mysql://{parts}/{registry_db}"
        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)  # required with it
        # DATABASE_URL means production settings: no HTTPS redirect for the test client,
        # and a cache of each process's own (the default, the broker's Redis database + 1,
        # does not exist when the bench's broker database is 15).
        os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "false"
        os.environ["FARM_CACHE_URL"] = "locmemcache://"
    # `timeout` or a kill by pid sends SIGTERM: unwind, so that the cleanup below still runs.
    signal.signal(signal.SIGTERM, _terminated)
    load = LoadSampler()
    stop_sampling = _sample_periodically(load)
    bench = RunsBench(args, env, token, started_at)
    failed = False
    try:
        bench.run()
    except (Exception, SystemExit, KeyboardInterrupt):  # clean up, keep what was measured
        bench.results["error"] = traceback.format_exc()
        progress(bench.results["error"])
        failed = True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup is not interrupted
        stop_sampling.set()
        try:
            bench.results["cleanup"] = bench.cleanup(registry_db)
        except Exception:
            bench.results["cleanup_error"] = traceback.format_exc()
            failed = True
        env.remove()
    bench.results["load"] = load.report()
    path = bench.write_results()
    print(json.dumps(bench.results, indent=1))
    progress(f"results written to {path.relative_to(BASE_DIR)}")
    leftovers = bench.results.get("cleanup", {}).get("leftover_databases")
    return 1 if failed or leftovers else 0


def _terminated(signum, frame) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def _sample_periodically(load: LoadSampler) -> threading.Event:
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(2.0):
            load.sample()

    load.sample()
    threading.Thread(target=sample, name="load-sampler", daemon=True).start()
    return stop


def _server(params: dict, statement: str, args: tuple = ()) -> list[tuple]:
    import MySQLdb

    connection = MySQLdb.connect(**params, autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute(statement, args)
        return list(cursor.fetchall())
    finally:
        connection.close()


def _driver_source() -> dict[str, Any]:
    """Which MariaDB driver was measured: its file's hash, and whether it streams the tool."""
    path = BASE_DIR / "provisioning" / "drivers" / "mariadb.py"
    text = path.read_bytes()
    return {
        "file": str(path.relative_to(BASE_DIR)),
        "sha256": hashlib.sha256(text).hexdigest(),
        "dumps_with_mariadb_dump": b'DUMP_TOOL = "mariadb-dump"' in text,
    }


class RunsBench:
    def __init__(self, args, env, token: str, started_at: datetime) -> None:
        from bench.floor import FloorDatabases
        from bench.lifecycle import BenchWikis

        self.args, self.env, self.token = args, env, token
        self.params = env.db_params()
        self.wikis = BenchWikis(token)
        self.floors = FloorDatabases(token)
        self.pools: dict[str, environment.WorkerPool] = {}
        self.data_ids: list[str] = []
        self.schema_ids: list[str] = []
        self.profiles: dict[str, str] = {}
        self.prefix = f"{started_at:%Y%m%dT%H%M%SZ}"
        self.parallelism = dict.fromkeys(SIZE_CLASSES, args.parallelism)
        self.results: dict[str, Any] = {
            "bench": {
                "command": "python -m bench.runs " + " ".join(sys.argv[1:]),
                "started_at": started_at.isoformat(timespec="seconds"),
                "run_token": token,
                "source": environment.source_revision(),
                "mariadb_driver": _driver_source(),
                "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "registry": args.registry,
                "broker": env.broker_url,
                "workers": {
                    "runs": f"celery -Q runs --pool prefork --concurrency {args.parallelism}",
                    "default": "celery -Q celery --pool prefork --concurrency 2",
                    "publisher": "celery -Q exports --concurrency 1",
                },
                "run_parallelism": self.parallelism,
            }
        }

    # -- the run --------------------------------------------------------------------------

    def run(self) -> None:
        import django
        from django.core.management import call_command

        django.setup()
        from django.db import connection

        from bench.fixtures import ops_user
        from farm import publishing
        from farm.models import Family

        call_command("migrate", verbosity=0)
        # The migration requests a first publish without a message (beat's sweep sends
        # it); the bench runs no beat, so it publishes once itself.
        publishing.publish(respect_window=False)
        self.ops = ops_user()
        for name in (DATA_FAMILY, SCHEMA_FAMILY, LARGE_FAMILY):
            Family.objects.get_or_create(name=name)
        self.results["machine"] = environment.machine_info(self.params)
        self.results["bench"]["registry_vendor"] = connection.vendor
        self.start_workers()
        phases = self.args.phases
        self._phase("fixture", self.build_fixture)
        if "backup" in phases:
            self._phase("backup", self.measure_backup)
        if "migrate" in phases:
            self._phase("migrate", self.measure_migrate)
        if "create" in phases:
            self._phase("create", self.measure_create)
        if "restore" in phases:
            self._phase("restore", self.measure_restore)
        self.results["profiles"] = self.profiles

    def _phase(self, name: str, function) -> None:
        started = time.perf_counter()
        progress(f"{name} ...")
        function()
        seconds = round(time.perf_counter() - started, 1)
        self.results.setdefault("phase_seconds", {})[name] = seconds
        progress(f"{name} done in {seconds}s")
        self.write_results()  # what was measured so far survives a later failure

    def write_results(self) -> Path:
        self.results["targets"] = evaluate_targets(self.results)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.prefix}-runs.json"
        path.write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        return path

    # -- workers --------------------------------------------------------------------------

    def start_workers(self) -> None:
        """As the Procfile runs the farm: a pool on `runs` with P slots, a pool on the
        default queue for self-service operations, and one publisher on `exports`."""
        data_dir = self.env.data_dir
        for name, queues, concurrency in (
            ("runs", "runs", self.args.parallelism),
            ("default", "celery", 2),
            ("publisher", "exports", 1),
        ):
            self.pools[name] = environment.WorkerPool(
                concurrency=concurrency,
                log_path=data_dir / f"worker-{name}.log",
                run_token=self.token,
                queues=queues,
                name=name,
            )
        self.results["worker_ready_seconds"] = {
            name: round(pool.wait_ready(), 2) for name, pool in self.pools.items()
        }

    def stop_workers(self) -> None:
        for pool in self.pools.values():
            pool.stop()
        self.pools = {}

    def purge_broker(self) -> None:
        """Drop the queued messages; a publish request lost with them is done now, as
        beat's sweep would (see bench/run.py)."""
        from farm import publishing
        from portal.celery import app

        app.control.purge()
        publishing.publish(respect_window=False)

    def worker_logs(self) -> str:
        return "\n".join(f"--- {name}\n{pool.log()[-3000:]}" for name, pool in self.pools.items())

    # -- fixture --------------------------------------------------------------------------

    def build_fixture(self) -> None:
        """The data wikis (created by the default pool, then filled straight into their
        tables with the 300-page fixture of bench/fixtures.py and its search documents)
        and the schema-only wikis, as each phase needs them."""
        from bench.fixtures import fill_wiki_database
        from farm.models import Wiki
        from provisioning.demo import index_demo_pages

        phases, report = self.args.phases, {}
        data = self.args.wikis if {"backup", "create"} & set(phases) else 0
        data = max(data, 1) if "restore" in phases else data
        schema = self.args.migrate_wikis if "migrate" in phases else 0
        started = time.perf_counter()
        self.data_ids = self.create_wikis(DATA_FAMILY, data, kind="d")
        self.schema_ids = self.create_wikis(SCHEMA_FAMILY, schema, kind="m")
        report["create_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        rows = documents = 0
        for number, wiki in enumerate(Wiki.objects.filter(pk__in=self.data_ids).order_by("pk")):
            counts = fill_wiki_database(
                self.params,
                wiki.database_name,
                pages=self.args.pages,
                revisions=self.args.revisions,
                seed=number + 1,
            )
            rows += sum(counts.values())
            documents += index_demo_pages(wiki, pages=self.args.pages)["documents"]
        report.update(
            {
                "data_wikis": len(self.data_ids),
                "pages_each": self.args.pages,
                "revisions_each": self.args.revisions,
                "rows_each": rows // max(1, len(self.data_ids)),
                "search_documents_each": documents // max(1, len(self.data_ids)),
                "schema_only_wikis": len(self.schema_ids),
                "fill_seconds": round(time.perf_counter() - started, 1),
                "database_bytes_each": self._database_bytes(self.data_ids[:1]),
            }
        )
        self.results["fixture"] = report
        self.settle()

    def create_wikis(self, family: str, count: int, *, kind: str) -> list[str]:
        """`count` creates accepted by the service; the default pool makes them active."""
        from farm.models import Wiki, WikiState
        from provisioning import services
        from provisioning.models import Operation, OperationState

        ids = [self.wikis.new_id(kind) for _ in range(count)]
        for wiki_id in ids:
            services.wiki_create(
                actor=self.ops, wiki_id=wiki_id, family=family, sitename=f"Bench {wiki_id}"
            )
        deadline = time.monotonic() + CREATE_TIMEOUT_SECONDS
        while Wiki.objects.filter(pk__in=ids, state=WikiState.ACTIVE).count() < count:
            failed = Operation.objects.filter(wiki_ref__in=ids, state=OperationState.FAILED)
            if failed.exists() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"fixture creates: {failed.first() or 'timed out'}\n{self.worker_logs()}"
                )
            time.sleep(0.25)
        return ids

    def _database_bytes(self, wiki_ids: list[str]) -> int | None:
        from farm.models import Wiki

        names = list(Wiki.objects.filter(pk__in=wiki_ids).values_list("database_name", flat=True))
        if not names:
            return None
        placeholders = ",".join(["%s"] * len(names))
        query = "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES"
        rows = _server(self.params, f"{query} WHERE TABLE_SCHEMA IN ({placeholders})", tuple(names))
        return int(rows[0][0] or 0)

    def settle(self) -> None:
        """Wait until no operation is open and the export publisher is idle: each phase
        starts on a quiet farm."""
        from bench.lifecycle import _publisher_state
        from provisioning.models import Operation, OperationState

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = _publisher_state()
            busy = Operation.objects.filter(
                state__in=(OperationState.PENDING, OperationState.RUNNING)
            ).exists()
            if not busy and state["requested_at"] is None and state["lease_until"] is None:
                return
            time.sleep(0.25)
        open_ops = list(
            Operation.objects.filter(
                state__in=(OperationState.PENDING, OperationState.RUNNING)
            ).values_list("kind", "wiki_ref", "state")[:5]
        )
        raise RuntimeError(
            f"the farm did not settle in 120 s: publisher {state}, open operations {open_ops}"
            f"\n{self.worker_logs()}"
        )

    def databases_of(self, wiki_ids: list[str]) -> list[str]:
        from farm.models import Wiki

        rows = Wiki.objects.filter(pk__in=wiki_ids).values_list("pk", "database_name")
        names = dict(rows)
        return [names[wiki_id] for wiki_id in wiki_ids]

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, *, kind: str, selection: dict, params: dict | None = None):
        from provisioning import runs

        started = time.time()
        run = runs.run_create(
            actor=self.ops,
            kind=kind,
            selection=selection,
            parallelism=self.parallelism,
            params=params,
        )
        return run, started, time.time()

    def wait_run(self, run) -> None:
        from provisioning import runs
        from provisioning.models import ACTIVE_RUN_STATES

        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.state not in ACTIVE_RUN_STATES:
                return
            time.sleep(0.1)
        raise RuntimeError(f"run {run.pk} still {run.state}: {runs.progress(run)}\n"
                           f"{self.worker_logs()}")  # fmt: skip

    def timed_run(self, *, kind: str, selection: dict, params: dict | None = None) -> dict:
        run, started, accepted = self.start_run(kind=kind, selection=selection, params=params)
        self.wait_run(run)
        report = run_report(run, started, accepted, parallelism=self.args.parallelism)
        if report["counts"].get("succeeded") != report["items"]:
            raise RuntimeError(f"run {run.pk} ended {run.state}: {report['counts']}, "
                               f"first failure: {report.get('first_failure')}")  # fmt: skip
        return report

    # -- 1. backup ------------------------------------------------------------------------

    def measure_backup(self) -> None:
        databases = self.databases_of(self.data_ids)
        p = self.args.parallelism
        raw_dir = self.env.data_dir / "raw-dumps"
        progress(f"backup: raw floor before, {len(databases)} databases, P={p}")
        before = dump_floor(self.params, databases, raw_dir / "before", parallelism=p)
        progress(f"backup: raw floor {before['wall_seconds']} s; the backup run ...")
        run = self.timed_run(kind="backup", selection={"family": DATA_FAMILY})
        progress(f"backup: run {run['wall_seconds']} s; raw floor after ...")
        after = dump_floor(self.params, databases, raw_dir / "after", parallelism=p)
        shutil.rmtree(raw_dir, ignore_errors=True)
        floor_wall = statistics.mean([before["wall_seconds"], after["wall_seconds"]])
        self.results["backup"] = {
            "what": f"backup run of {len(databases)} wikis ({self.args.pages} pages, "
            f"{self.args.revisions} revisions, search documents each), parallelism {p} on "
            f"{p} `runs` worker slots, against {p} raw `mariadb-dump --single-transaction "
            "--quick <db> | gzip > file` pipelines at once, before and after the run",
            "floor_before": before,
            "run": run,
            "floor_after": after,
            "floor_wall_seconds_mean": round(floor_wall, 3),
            "ratio_to_floor": round(run["wall_seconds"] / floor_wall, 3),
            "ratio_to_floor_before": round(run["wall_seconds"] / before["wall_seconds"], 3),
            "ratio_to_floor_after": round(run["wall_seconds"] / after["wall_seconds"], 3),
            "bytes_ratio_database_files": round(
                run["database_file_bytes"] / max(1, before["bytes"]), 3
            ),
        }
        self.settle()

    # -- 2. migrate -----------------------------------------------------------------------

    def measure_migrate(self) -> None:
        databases = self.databases_of(self.schema_ids)
        p = self.args.parallelism
        column = "INT NOT NULL DEFAULT 0"
        progress(f"migrate: raw floor before, {len(databases)} databases, P={p}")
        before = alter_floor(self.params, databases, f"ALTER TABLE page ADD COLUMN "
                             f"page_bench_floor1 {column}", parallelism=p)  # fmt: skip
        sql = self.env.data_dir / "page_bench_run.sql"
        sql.write_text(f"ALTER TABLE /*_*/page ADD COLUMN page_bench_run {column};\n")
        progress(f"migrate: raw floor {before['wall_seconds']} s; the migration run ...")
        run = self.timed_run(
            kind="migrate",
            selection={"family": SCHEMA_FAMILY},
            params={"migration": MIGRATION_NAME, "sql_file": str(sql)},
        )
        progress(f"migrate: run {run['wall_seconds']} s; raw floor after ...")
        after = alter_floor(self.params, databases, f"ALTER TABLE page ADD COLUMN "
                            f"page_bench_floor2 {column}", parallelism=p)  # fmt: skip
        placeholders = ",".join(["%s"] * len(databases))
        query = "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE COLUMN_NAME = %s"
        migrated = _server(
            self.params,
            f"{query} AND TABLE_SCHEMA IN ({placeholders})",
            ("page_bench_run", *databases),
        )[0][0]
        floor_wall = statistics.mean([before["wall_seconds"], after["wall_seconds"]])
        self.results["migrate"] = {
            "what": f"migration run (kind migrate, sql_file: ALTER TABLE /*_*/page ADD COLUMN) "
            f"of {len(databases)} schema-only wikis, parallelism {p} on {p} `runs` worker "
            f"slots, against {p} processes with one connection each running `USE <db>; ALTER "
            "TABLE page ADD COLUMN ...` over its share, before and after the run",
            "floor_before": before,
            "run": run,
            "floor_after": after,
            "databases_with_the_run_column": int(migrated),
            "floor_wall_seconds_mean": round(floor_wall, 3),
            "ratio_to_floor": round(run["wall_seconds"] / floor_wall, 3),
            "ratio_to_floor_before": round(run["wall_seconds"] / before["wall_seconds"], 3),
            "ratio_to_floor_after": round(run["wall_seconds"] / after["wall_seconds"], 3),
            "portal_seconds_per_item": round(
                (run["wall_seconds"] - floor_wall) * p / max(1, len(databases)), 4
            ),
        }
        if not self.args.no_profile and self.results["migrate"]["ratio_to_floor"] > 1.25:
            self.profile_migrate_items()
        self.settle()

    def profile_migrate_items(self, count: int = 20) -> None:
        """Where a migration item's time goes in the portal: two more migrations of `count`
        schema wikis each, dispatched and run in this process (no broker round trips) with
        the `runs` pool stopped meanwhile: one counting the registry queries per item, one
        under the profiler."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from bench.profiling import profile

        count = min(count, len(self.schema_ids))
        self.pools.pop("runs").stop()  # this process plays the `runs` worker
        try:
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                self._migrate_in_process(self.schema_ids[:count], "census")
                census_seconds = time.perf_counter() - started
            path = RESULTS_DIR / f"{self.prefix}-runs-migrate-items.txt"
            started = time.perf_counter()
            profile(lambda: self._migrate_in_process(self.schema_ids[-count:], "profile"), path)
            self.results["migrate"]["in_process"] = {
                "what": f"migration runs of {count} wikis dispatched and run in the bench "
                "process (runs.dispatch + engine.run_operation, no broker): the portal's "
                "work per item without the broker; the second one under pyinstrument",
                "seconds_per_item": round(census_seconds / count, 4),
                "registry_queries_per_item": round(len(captured) / count, 1),
                "registry_queries_by_kind_per_item": _query_kinds(captured, count),
                "profiled_seconds": round(time.perf_counter() - started, 2),
                "profile": str(path.relative_to(BASE_DIR)),
            }
            self.profiles["migrate-items"] = str(path.relative_to(BASE_DIR))
        finally:
            self.purge_broker()  # the messages of the operations run here
            self.pools["runs"] = environment.WorkerPool(
                concurrency=self.args.parallelism,
                log_path=self.env.data_dir / "worker-runs.log",
                run_token=self.token,
                queues="runs",
                name="runs2",
            )
            self.pools["runs"].wait_ready()

    def _migrate_in_process(self, wiki_ids: list[str], name: str) -> None:
        from provisioning import engine, runs
        from provisioning.models import ACTIVE_RUN_STATES, Operation, OperationState, Run

        sql = self.env.data_dir / f"page_bench_{name}.sql"
        sql.write_text(f"ALTER TABLE /*_*/page ADD COLUMN page_bench_{name} INT NOT NULL "
                       "DEFAULT 0;\n")  # fmt: skip
        run, _, _ = self.start_run(
            kind="migrate",
            selection={"wiki_ids": wiki_ids},
            params={"migration": f"bench-{name}-column", "sql_file": str(sql)},
        )
        while Run.objects.get(pk=run.pk).state in ACTIVE_RUN_STATES:
            runs.dispatch(run.pk)
            for op in Operation.objects.filter(run=run, state=OperationState.PENDING):
                engine.run_operation(op.pk)

    # -- 3. create latency while a run works ----------------------------------------------

    def measure_create(self) -> None:
        from bench.floor import measure_floor

        samples, spacing = self.args.create_samples, self.args.create_spacing
        progress("create: schema-load floor, then creates on an idle farm")
        schema_floor = measure_floor(
            self.params, str(self.args.schema_sql), self.floors, samples=10
        )
        idle = self.creates(samples, spacing=spacing)
        self.settle()
        progress("create: creates while a backup run works")
        run, started, accepted = self.start_run(kind="backup", selection={"family": DATA_FAMILY})
        self.wait_items_running(run)
        during = self.creates(samples, spacing=spacing, while_run=run)
        self.wait_run(run)
        run_finished = run.finished_at.timestamp()
        inside = [s for s in during if s["active_at"] <= run_finished]
        idle_median = statistics.median(s["latency"] for s in idle)
        busy_median = statistics.median(s["latency"] for s in inside) if inside else None
        self.results["create"] = {
            "what": "POST /api/v1/wikis/ (Django test client, as ops) -> Redis -> the "
            "default-queue worker pool (concurrency 2) -> activated_at; on an idle farm "
            "(the floor), then while a backup run of the data wikis occupies the `runs` "
            f"workers; one create every {spacing} s after the previous one is active",
            "schema_load_floor": schema_floor,
            "idle": create_summary(idle),
            "during_run": create_summary(inside),
            "samples_after_the_run_ended": len(during) - len(inside),
            "run": run_report(run, started, accepted, parallelism=self.args.parallelism),
            "ratio_during_to_idle_median": (
                round(busy_median / idle_median, 3) if busy_median else None
            ),
            "ratio_idle_to_schema_floor_median": round(
                idle_median / schema_floor["create_and_load"]["median_s"], 3
            ),
        }
        self.settle()

    def wait_items_running(self, run) -> None:
        from provisioning.models import RunItemState

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if run.items.filter(state=RunItemState.RUNNING).exists():
                return
            time.sleep(0.05)
        raise RuntimeError(f"run {run.pk}: no item running after 60 s\n{self.worker_logs()}")

    def creates(self, samples: int, *, spacing: float, while_run=None) -> list[dict]:
        from bench.lifecycle import _accept_through_api, _step_seconds, _wait_active, api_client
        from provisioning.models import ACTIVE_RUN_STATES

        client = api_client(self.ops)
        taken = []
        for _ in range(samples):
            if while_run is not None:
                while_run.refresh_from_db()
                if while_run.state not in ACTIVE_RUN_STATES:
                    break
            wiki_id = self.wikis.new_id("c")
            started = time.time()
            _accept_through_api(client, wiki_id)
            accepted = time.time()
            active_at, steps = _wait_active(wiki_id)
            first_step = datetime.fromisoformat(steps[0]["started_at"]).timestamp()
            taken.append(
                {
                    "latency": active_at - started,
                    "accept": accepted - started,
                    "queue_wait": first_step - accepted,
                    "active_at": active_at,
                    "steps": _step_seconds(steps),
                }
            )
            time.sleep(spacing)
        return taken

    # -- 4. restore as a new wiki id ------------------------------------------------------

    def measure_restore(self) -> None:
        from bench.fixtures import fill_wiki_database
        from farm.models import Wiki
        from provisioning.demo import index_demo_pages

        small = self.data_ids[0]
        (large,) = self.create_wikis(LARGE_FAMILY, 1, kind="l")
        wiki = Wiki.objects.get(pk=large)
        counts = fill_wiki_database(
            self.params,
            wiki.database_name,
            pages=self.args.large_pages,
            revisions=self.args.large_revisions,
            seed=99,
        )
        index_demo_pages(wiki, pages=self.args.large_pages)
        self.settle()
        progress("restore: backup run of the small and the large wiki")
        backup = self.timed_run(kind="backup", selection={"wiki_ids": [small, large]})
        backup_id = backup["run"]
        raw_dir = self.env.data_dir / "raw-restore"
        databases = dict(zip((small, large), self.databases_of([small, large]), strict=True))
        single_dumps = {
            wiki_id: raw.dump_single(self.params, databases[wiki_id], raw_dir / f"{wiki_id}.sql.gz")
            for wiki_id in (small, large)
        }
        # The clones run in child processes: no worker may take their messages.
        self.stop_workers()
        self.purge_broker()
        report: dict[str, Any] = {
            "what": "restores.wiki_clone (restore as a new wiki id) from a backup run's "
            "backup, its operation run by the engine in a fresh child process (`python -m "
            "bench.child`: seconds and VmHWM), against `gzip -dc database.sql.gz | mariadb "
            "<new db>` of the same backup file, and `mariadb <new db> < native.sql` of a "
            "native `mariadb-dump --single-transaction --quick` (extended INSERTs); each "
            "after CREATE DATABASE, taken in turns with the clones",
            "backup_run": backup,
        }
        for label, wiki_id, pages in (
            ("small", small, self.args.pages),
            ("large", large, self.args.large_pages),
        ):
            progress(f"restore: {label} wiki ({pages} pages), {self.args.restore_samples} each")
            report[label] = self.clone_against_floor(
                wiki_id, backup_id, raw_dir, pages=pages, single_dump=single_dumps[wiki_id]
            )
        report["large"]["rows"] = sum(counts.values())
        shutil.rmtree(raw_dir, ignore_errors=True)
        self.results["restore"] = report

    def clone_against_floor(
        self, wiki_id: str, backup_id: str, raw_dir: Path, *, pages: int, single_dump: dict
    ) -> dict:
        from bench.lifecycle import _finished, run_in_child
        from farm.models import Wiki
        from provisioning import restores, sinks

        database = Wiki.objects.get(pk=wiki_id).database_name
        name = f"backups/{backup_id}/{wiki_id}/database.sql.gz"
        same_dump = Path(sinks.archive_storage().path(name))
        native = raw_dir / f"{wiki_id}-native.sql"
        native_bytes = raw.dump_plain(self.params, database, native)
        same, plain, clones = [], [], []
        for number in range(self.args.restore_samples):
            if number == 0:  # one row per INSERT, one commit each in the client: slow, once
                same.append(raw.restore_one(self.params, self.floors.new_name(), same_dump))
            plain.append(raw.restore_one(self.params, self.floors.new_name(), native))
            operation = restores.wiki_clone(
                actor=self.ops,
                wiki_id=wiki_id,
                source_id=backup_id,
                new_id=self.wikis.new_id("k"),
            )
            clones.append(_finished(operation, run_in_child(operation.pk)))
        clone_seconds = statistics.median(c["seconds"] for c in clones)
        same_median = statistics.median(same)
        return {
            "wiki_id": wiki_id,
            "pages": pages,
            "backup_file_bytes": same_dump.stat().st_size,
            "native_dump_bytes": native_bytes,
            "raw_single_dump": single_dump,
            "clone": {
                "seconds": summarize([c["seconds"] for c in clones]),
                "vmhwm_after_setup_kib": max(c["vmhwm_after_setup_kib"] for c in clones),
                "vmhwm_after_operation_kib": max(c["vmhwm_after_operation_kib"] for c in clones),
                "median_step_ms": {
                    step: round(
                        statistics.median(c["median_step_ms"].get(step, 0) for c in clones), 1
                    )
                    for step in clones[0]["median_step_ms"]
                },
                "runs": clones,
            },
            "floor_same_dump": summarize(same),
            "floor_native_dump": summarize(plain),
            "ratio_to_floor_same_dump": round(clone_seconds / same_median, 3),
            "ratio_to_floor_native_dump": round(clone_seconds / statistics.median(plain), 3),
            "restore_step_ratio_to_floor_same_dump": round(
                statistics.median(c["median_step_ms"]["restore_database"] for c in clones)
                / 1000
                / same_median,
                3,
            ),
        }

    # -- cleanup --------------------------------------------------------------------------

    def cleanup(self, registry_db: str | None) -> dict[str, Any]:
        """Stop the workers; drop the databases of this run's wikis (through the driver, by
        the names derived from their registry rows), the floor's and the registry's; list
        any database still carrying the run token."""
        from django.apps import apps

        self.stop_workers()
        dropped = 0
        if apps.ready:
            from django.db import connections

            from bench.lifecycle import drop_wiki_databases

            dropped = drop_wiki_databases(self.wikis.created)
            connections.close_all()
        self.floors.drop_all(self.params)
        if registry_db is not None:
            _server(self.params, f"DROP DATABASE IF EXISTS {raw.quote_identifier(registry_db)}")
        leftovers = _server(
            self.params,
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
            (f"%{self.token}%",),
        )
        return {
            "wikis_created": len(self.wikis.created),
            "wiki_databases_dropped": dropped,
            "floor_databases_dropped": len(self.floors.names),
            "registry_database_dropped": registry_db,
            "leftover_databases": [row[0] for row in leftovers],
        }


# --- floors and reports --------------------------------------------------------------------


def dump_floor(params: dict, databases: list[str], out_dir: Path, *, parallelism: int) -> dict:
    result = raw.dump_all(params, databases, out_dir, parallelism=parallelism)
    dumps = result["dumps"]
    return {
        "wall_seconds": round(result["wall_seconds"], 3),
        "per_database": summarize([d["seconds"] for d in dumps]),
        "bytes": sum(d["bytes"] for d in dumps),
        "databases": len(dumps),
    }


def alter_floor(params: dict, databases: list[str], statement: str, *, parallelism: int) -> dict:
    result = raw.alter_all(params, databases, statement, parallelism=parallelism)
    return {
        "statement": statement,
        "wall_seconds": round(result["wall_seconds"], 3),
        "processes": result["processes"],
        "per_database": summarize(result["timings"], unit="ms", digits=2),
        "databases": len(result["timings"]),
    }


def _query_kinds(captured, items: int) -> dict[str, float]:
    """Registry queries per item by statement and table: `UPDATE provisioning_operation`."""
    import re
    from collections import Counter

    kinds: Counter[str] = Counter()
    for query in captured.captured_queries:
        sql = query["sql"]
        verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
        table = re.search(r'(?:FROM|INTO|UPDATE)\s+[`"]?(\w+)', sql, re.IGNORECASE)
        kinds[f"{verb} {table.group(1) if table else ''}".strip()] += 1
    return {kind: round(n / items, 2) for kind, n in kinds.most_common()}


def _seconds(later, earlier) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def max_overlap(intervals: list[tuple]) -> int:
    """The most intervals (start, end) that share an instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def run_report(run, started: float, accepted: float, *, parallelism: int) -> dict:
    """Wall time (run_create called to the run's finished_at), per-item p50/p95 from the
    run items, the operations' own time and steps, bytes, and how busy the P slots were."""
    from collections import Counter

    from bench.lifecycle import _median_steps, _step_seconds
    from provisioning.models import Operation

    run.refresh_from_db()
    items = list(run.items.all())
    operations = {op.pk: op for op in Operation.objects.filter(run=run)}
    done = [i for i in items if i.started_at and i.finished_at]
    ops = [operations[i.operation_id] for i in done if i.operation_id in operations]
    op_seconds = [_seconds(op.finished_at, op.started_at) for op in ops]
    op_seconds = [s for s in op_seconds if s is not None]
    claim_waits = [
        _seconds(operations[i.operation_id].started_at, i.started_at)
        for i in done
        if i.operation_id in operations and operations[i.operation_id].started_at
    ]
    ends = sorted(i.finished_at for i in done)
    starts = sorted(i.started_at for i in done)
    # From one item's end to the next item's start: the dispatch round trip.
    gaps = []
    for end in ends[:-1]:
        later = [s for s in starts if s >= end]
        if later:
            gaps.append((later[0] - end).total_seconds())
    wall = run.finished_at.timestamp() - started if run.finished_at else None
    failures = [i for i in items if i.state == "failed"]
    dumps = [op.result_of("dump_database") for op in ops]
    report = {
        "run": run.pk,
        "kind": run.kind,
        "state": run.state,
        "items": len(items),
        "counts": dict(Counter(i.state for i in items)),
        "accept_seconds": round(accepted - started, 3),
        "wall_seconds": round(wall, 3) if wall is not None else None,
        "run_started_to_finished_seconds": _seconds(run.finished_at, run.started_at),
        "first_item_start_after_accept_s": (
            round(starts[0].timestamp() - accepted, 3) if starts else None
        ),
        "last_item_end_to_run_finished_s": (
            round(_seconds(run.finished_at, ends[-1]), 3) if ends and run.finished_at else None
        ),
        "per_item": summarize([i.duration_seconds for i in done]),
        "operation_seconds": summarize(op_seconds),
        "claim_wait": summarize(claim_waits, unit="ms", digits=1),
        "item_end_to_next_start": summarize(gaps, unit="ms", digits=1),
        "median_step_ms": _median_steps([_step_seconds(op.steps) for op in ops]),
        "slots_busy_share": (round(sum(op_seconds) / (wall * parallelism), 3) if wall else None),
        "max_items_running_at_once": max_overlap([(i.started_at, i.finished_at) for i in done]),
        "bytes": sum(i.bytes for i in items),
        "database_file_bytes": sum(int(d.get("bytes", 0)) for d in dumps),
    }
    if len(done) <= 5:  # a small run: each wiki's own figures
        report["by_wiki"] = {
            i.wiki_ref: {
                "item_seconds": i.duration_seconds,
                "operation_seconds": _seconds(
                    operations[i.operation_id].finished_at, operations[i.operation_id].started_at
                ),
                "step_ms": {
                    name: round(seconds * 1000, 1)
                    for name, seconds in _step_seconds(operations[i.operation_id].steps).items()
                },
                "bytes": i.bytes,
            }
            for i in done
            if i.operation_id in operations
        }
    if failures:
        report["first_failure"] = f"{failures[0].wiki_ref}: {failures[0].output_tail[-500:]}"
    return report


def create_summary(samples: list[dict]) -> dict:
    from bench.lifecycle import _median_steps

    if not samples:
        return {"n": 0}
    return {
        "accept_to_active": summarize([s["latency"] for s in samples]),
        "accept": summarize([s["accept"] for s in samples], unit="ms", digits=1),
        "queue_wait": summarize([s["queue_wait"] for s in samples], unit="ms", digits=1),
        "median_step_ms": _median_steps([s["steps"] for s in samples]),
    }


# --- targets -------------------------------------------------------------------------------


def evaluate_targets(results: dict) -> list[dict]:
    targets = []

    def target(name: str, goal: str, measured: Any, met: bool | None) -> None:
        targets.append({"name": name, "target": goal, "measured": measured, "met": met})

    backup = results.get("backup")
    if backup:
        ratio = backup["ratio_to_floor"]
        target(
            f"backup run of {backup['run']['items']} wikis / raw mariadb-dump | gzip, same P",
            "<= 1.25x",
            ratio,
            ratio <= 1.25,
        )
    migrate = results.get("migrate")
    if migrate:
        ratio = migrate["ratio_to_floor"]
        target(
            f"migration run of {migrate['run']['items']} wikis / raw ALTER loop, same P",
            "<= 1.25x",
            ratio,
            ratio <= 1.25,
        )
    create = results.get("create")
    if create and create["ratio_during_to_idle_median"] is not None:
        ratio = create["ratio_during_to_idle_median"]
        target("create median while a backup run works / idle", "<= 2x", ratio, ratio <= 2)
    restore = results.get("restore")
    if restore:
        small, large = restore["small"], restore["large"]
        seconds = small["clone"]["seconds"]["median_s"]
        target(f"restore as new of a {small['pages']}-page wiki", "seconds (< 10 s)",
               seconds, seconds < 10)  # fmt: skip
        peaks = [small["clone"]["vmhwm_after_operation_kib"],
                 large["clone"]["vmhwm_after_operation_kib"]]  # fmt: skip
        target(
            f"restore as new, peak RSS (VmHWM, KiB): {small['pages']} vs {large['pages']} pages",
            "flat: within 20 MiB",
            peaks,
            peaks[1] - peaks[0] <= 20 * 1024,
        )
    return targets


if __name__ == "__main__":
    raise SystemExit(main())
