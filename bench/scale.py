"""Issue 10's targets at farm scale, on both registries: `python -m bench.scale` (JSON on
stdout), or the `scale` phase of `python -m bench`.

Django cannot switch registries in-process, so each registry gets a child process of its
own (`python -m bench.scale_child`): SQLite (WAL) in a temporary FARM_DATA_DIR, as in the
embedded default, and MariaDB through DATABASE_URL to a database of the run
(`benchreg_<token>`, created here and dropped here, nothing else). Each child measures at
10 wikis, inserts the registry fixture (100,000 wikis by default, one family of exactly
10,000), writes every export file once, and measures again: create against the floor of the
same child, a settings change on the family, the export 304s, the list page and the
effective config. Targets missed are profiled with pyinstrument (bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.environment import BASE_DIR, MEDIAWIKI_SCHEMA, LoadSampler, source_revision

RESULTS_DIR = BASE_DIR / "bench" / "results"
REGISTRIES = ("sqlite", "mariadb")
FAMILY = "partners"  # the fixture's family of exactly `family_wikis` wikis
REGISTRY_DATABASE_PREFIX = "benchreg_"
# Variables of the caller's world that must not reach a child: its registry, its broker,
# its S3 and search servers. The child gets its own (see child_environment).
INHERITED_PREFIXES_DROPPED = ("CELERY_", "FARM_S3_", "OPENSEARCH_")

# key: (what, target, how the measured value meets it), per size report of a child.
TARGETS: dict[str, tuple[str, str]] = {
    "create": ("create, accept to active (engine), median / floor median", "<= 1.5x"),
    "settings_put": ("PUT family setting (10,000 wikis), API call", "< 100 ms"),
    "settings_publish": ("publish to the last affected wiki's file", "< 10 s"),
    "settings_verified": ("every family file holds the value; outside file untouched", "all"),
    "wiki_export_304": ("GET /api/v1/exports/wikis/<id>.json 304, p95", "< 5 ms"),
    "farm_json_304": ("GET /api/v1/exports/farm.json 304, p95", "< 5 ms"),
    "list_api": ("GET /api/v1/wikis/ page of 50 over filters, p95", "< 50 ms"),
    "effective_config": ("GET /api/v1/config/effective/<id>/ p95", "< 5 ms"),
}


def measured_values(report: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    """(measured, met) of each target a size report of a child holds."""
    values: dict[str, tuple[Any, bool]] = {}
    create = report.get("create")
    if create:
        ratio = create["ratio_to_floor_median"]
        values["create"] = (ratio, ratio <= 1.5)
    reads = report.get("reads")
    if reads:
        for key in ("wiki_export_304", "farm_json_304"):
            p95 = reads[key]["status_304"]["p95_ms"]
            values[key] = (p95, p95 < 5)
        p95 = reads["list_api"]["all"]["p95_ms"]
        values["list_api"] = (p95, p95 < 50)
        api = reads["effective_config"].get("api", {})
        if "p95_ms" in api:
            values["effective_config"] = (api["p95_ms"], api["p95_ms"] < 5)
    change = report.get("settings_change")
    if change:
        values["settings_put"] = (change["put_ms"], change["put_ms"] < 100)
        seconds = change["publish_to_last_wiki_file_s"]
        values["settings_publish"] = (seconds, seconds < 10)
        verified = change["verified"]
        values["settings_verified"] = (
            f"{verified['files_holding_new_value']}/{verified['of']}, outside unchanged: "
            f"{verified['outside_file_unchanged']}",
            verified["all"] and verified["outside_file_unchanged"],
        )
    return values


def misses_of(report: dict[str, Any]) -> set[str]:
    return {key for key, (_, met) in measured_values(report).items() if not met}


def evaluate_targets(scale: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of every child and size, met or not."""
    targets = []
    for label, child in scale.get("registries", {}).items():
        for size in ("small", "large"):
            report = child.get(size)
            if not report:
                continue
            wikis = report.get("registry_wikis_at_reads")
            for key, (measured, met) in measured_values(report).items():
                what, goal = TARGETS[key]
                targets.append(
                    {
                        "name": f"scale [{label}, {wikis} wikis]: {what}",
                        "target": goal,
                        "measured": measured,
                        "met": met,
                    }
                )
    return targets


# --- the children --------------------------------------------------------------------------


def child_environment(
    *, data_dir: Path, db_url: str, schema_sql: Path, registry_url: str | None, label: str
) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(INHERITED_PREFIXES_DROPPED)
        and name not in ("DATABASE_URL", "DJANGO_SECRET_KEY")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "FARM_DATA_DIR": str(data_dir),
            "FARM_DB_URL": db_url,
            "FARM_SCHEMA_SQL": str(schema_sql),
            "FARM_API_CREATE_RATE": "",
            "LOG_LEVEL": "WARNING",
            "BENCH_SCALE_LABEL": label,
        }
    )
    if registry_url is not None:
        env["DATABASE_URL"] = registry_url
        # Required with DATABASE_URL (the embedded default keeps one in its data dir).
        env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def _db_params(db_url: str) -> dict[str, Any]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(db_url)
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }


def _server(db_url: str, statement: str, args: tuple = ()) -> list[tuple]:
    import MySQLdb

    connection = MySQLdb.connect(**_db_params(db_url), autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute(statement, args)
        return list(cursor.fetchall())
    finally:
        connection.close()


def _registry_url(db_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(db_url)
    return urlunsplit(("mysql", parts.netloc, f"/{name}", "", ""))


def run_child(
    label: str,
    *,
    token: str,
    options: dict[str, Any],
    db_url: str,
    schema_sql: Path,
    prefix: str,
) -> dict[str, Any]:
    """One registry in its own process; its data dir (and database) removed afterwards."""
    from provisioning.drivers.mariadb import quote_identifier

    data_dir = Path(tempfile.mkdtemp(prefix=f"farm-bench-scale-{label}-"))
    registry_db = None
    if label == "mariadb":
        registry_db = f"{REGISTRY_DATABASE_PREFIX}{token}"
        _server(
            db_url,
            f"CREATE DATABASE {quote_identifier(registry_db)} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        )
    config = {
        **options,
        "label": label,
        "token": token,
        "family": FAMILY,
        "results_dir": str(RESULTS_DIR),
        "prefix": f"{prefix}-scale-{label}",
    }
    config_path = data_dir / "scale-config.json"
    config_path.write_text(json.dumps(config))
    load = LoadSampler()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            load.sample()

    load.sample()
    threading.Thread(target=sample, name=f"load-{label}", daemon=True).start()
    try:
        env = child_environment(
            data_dir=data_dir,
            db_url=db_url,
            schema_sql=schema_sql,
            registry_url=_registry_url(db_url, registry_db) if registry_db else None,
            label=label,
        )
        process = subprocess.run(
            [sys.executable, "-m", "bench.scale_child", str(config_path)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            check=False,
        )
        lines = process.stdout.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"error": f"bench.scale_child exited {process.returncode}: {lines[-5:]}"}
        result["exit_code"] = process.returncode
    finally:
        stop.set()
        if registry_db is not None:
            _server(db_url, f"DROP DATABASE IF EXISTS {quote_identifier(registry_db)}")
        shutil.rmtree(data_dir, ignore_errors=True)
    result["load"] = load.report()
    # Every database the child made (wikis, floor, registry) carries its token: none may be
    # left. (The calling bench's own wikis carry the run token followed by digits.)
    result["leftover_databases"] = [
        row[0]
        for row in _server(
            db_url,
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
            (f"%{token}%",),
        )
    ]
    for name, path in result.get("profiles", {}).items():
        result["profiles"][name] = str(Path(path).relative_to(BASE_DIR))
    return result


def run_scale(
    *,
    run_token: str,
    db_url: str,
    schema_sql: Path,
    registries: tuple[str, ...],
    wikis: int,
    family_wikis: int,
    samples: int,
    floor_samples: int,
    requests: int,
    profile: bool,
    prefix: str,
) -> dict[str, Any]:
    options = {
        "wikis": wikis,
        "family_wikis": min(family_wikis, wikis // 2),
        "samples": samples,
        "floor_samples": floor_samples,
        "requests": requests,
        "profile": profile,
    }
    report: dict[str, Any] = {"options": {**options, "registries": list(registries)}}
    report["registries"] = {}
    for label in registries:
        print(f"[bench] scale: {label} registry ...", file=sys.stderr, flush=True)
        report["registries"][label] = run_child(
            label,
            token=f"{run_token}{label[0]}",
            options=options,
            db_url=db_url,
            schema_sql=schema_sql,
            prefix=prefix,
        )
    report["leftover_databases"] = [
        name for child in report["registries"].values() for name in child["leftover_databases"]
    ]
    return report


# --- `python -m bench.scale` ----------------------------------------------------------------


def add_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    add = parser.add_argument
    add(f"--{prefix}wikis", type=int, default=100_000, help="wikis in the fixture (100000)")
    add(
        f"--{prefix}family-wikis",
        type=int,
        default=10_000,
        help="wikis of the family whose setting changes (10000)",
    )
    add(
        f"--{prefix}registries",
        default=",".join(REGISTRIES),
        help="sqlite, mariadb or both (default sqlite,mariadb)",
    )
    add(f"--{prefix}samples", type=int, default=10, help="creates per size (10)")
    add(f"--{prefix}requests", type=int, default=200, help="requests per read measurement (200)")


def parse_registries(value: str) -> tuple[str, ...]:
    registries = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = set(registries) - set(REGISTRIES)
    if unknown:
        raise SystemExit(f"unknown registries {sorted(unknown)}; choose from {REGISTRIES}")
    return registries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    add_options(parser)
    parser.add_argument("--floor-samples", type=int, default=15, help="floor runs per size (15)")
    parser.add_argument(
        "--db-url", default=os.environ.get("BENCH_DB_URL", "mysql://root:@127.0.0.1:3306/")
    )
    parser.add_argument("--schema-sql", type=Path, default=MEDIAWIKI_SCHEMA)
    parser.add_argument("--no-profile", action="store_true", help="no profiles of the misses")
    parser.add_argument("--quick", action="store_true", help="2,000 wikis, 3 creates per size")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.wikis, args.family_wikis, args.samples = 2000, 200, 3
        args.requests, args.floor_samples = 40, 5
    if not args.schema_sql.is_file():
        raise SystemExit(f"{args.schema_sql} is missing: apt-get install -y mediawiki")
    started_at = datetime.now(UTC)
    run_token = secrets.token_hex(3)
    report = {
        "bench": {
            "command": "python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv),
            "started_at": started_at.isoformat(timespec="seconds"),
            "run_token": run_token,
            "source": source_revision(),
        },
        **run_scale(
            run_token=run_token,
            db_url=args.db_url,
            schema_sql=args.schema_sql,
            registries=parse_registries(args.registries),
            wikis=args.wikis,
            family_wikis=args.family_wikis,
            samples=args.samples,
            floor_samples=args.floor_samples,
            requests=args.requests,
            profile=not args.no_profile,
            prefix=f"{started_at:%Y%m%dT%H%M%SZ}",
        ),
    }
    report["targets"] = evaluate_targets(report)
    print(json.dumps(report, indent=1))
    failed = report["leftover_databases"] or any(
        "error" in child or child.get("exit_code") for child in report["registries"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
