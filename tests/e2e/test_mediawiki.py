"""End to end with Debian's MediaWiki 1.39: the portal provisions wikis on MariaDB with
MediaWiki's own schema and post-create hook, exports them, and `php -S` serves them through
contrib/mediawiki/ (router.php and FarmSettings.php). Everything is checked over HTTP.

Needs: `.ci/install-mediawiki.sh` (mediawiki, php-cli, php-mysql, ...) and MariaDB.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import MySQLdb
import pytest

from farm import config, exports, publishing
from farm.models import Wiki, WikiState
from provisioning import services
from provisioning.drivers import reset_drivers
from provisioning.models import OperationKind, OperationState
from provisioning.steps import STEP_FUNCTIONS
from tests.provisioning.helpers import run_pending
from tests.services import port_open, service_unavailable

pytestmark = [pytest.mark.django_db, pytest.mark.mariadb, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "mediawiki"
MW_PATH = Path(os.environ.get("MW_INSTALL_PATH", "/usr/share/mediawiki"))
MW_SCHEMA = MW_PATH / "maintenance" / "tables-generated.sql"
MARIADB_URL = os.environ.get("TEST_FARM_DB_URL", "mysql://root:@127.0.0.1:3306/")
PHP_MODULES = ("mysqli", "xml", "mbstring", "intl")
ANONYMOUS_EDIT_TOKEN = "+\\"

LOCAL_SETTINGS = """<?php
if ( !defined( 'MEDIAWIKI' ) ) {{ exit( 1 ); }}
$wgDBtype = 'mysql';
$wgDBuser = 'root';
$wgDBpassword = '';
$wgSecretKey = '{secret}';
$wgMainCacheType = CACHE_NONE;
$wgCacheDirectory = '{cache}';
$wgShowExceptionDetails = true;
wfLoadSkin( 'Vector' );
$wgFarmExportDir = '{export}';
require_once '{include}';
"""


def require_mediawiki() -> None:
    php = shutil.which("php")
    if php is None or not MW_SCHEMA.is_file():
        service_unavailable("MediaWiki and PHP are not installed (.ci/install-mediawiki.sh)")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True).stdout
    missing = [m for m in PHP_MODULES if m not in modules.split()]
    if missing:
        service_unavailable(f"PHP lacks the modules {missing} (.ci/install-mediawiki.sh)")
    if not port_open("127.0.0.1", 3306):
        service_unavailable("MariaDB is not listening on 127.0.0.1:3306")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def php_server(tmp_path):
    """`php -S` with the router and a LocalSettings.php that requires FarmSettings.php."""
    require_mediawiki()
    port = free_port()
    (tmp_path / "cache").mkdir()
    local_settings = tmp_path / "LocalSettings.php"
    local_settings.write_text(
        LOCAL_SETTINGS.format(
            secret=secrets.token_hex(32),
            cache=tmp_path / "cache",
            export=tmp_path / "exports",
            include=CONTRIB / "FarmSettings.php",
        )
    )
    env = {**os.environ, "MW_CONFIG_FILE": str(local_settings), "MW_INSTALL_PATH": str(MW_PATH)}
    log = open(tmp_path / "php-server.log", "wb")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(MW_PATH), str(CONTRIB / "router.php")],
        cwd=MW_PATH,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port, timeout=0.2):
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"php -S did not start: {(tmp_path / 'php-server.log').read_text()}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", local_settings
    server.terminate()
    server.wait(timeout=10)
    log.close()


@pytest.fixture
def mediawiki_farm(settings, tmp_path, php_server, monkeypatch):
    """The portal with the MariaDB driver, MediaWiki's schema and the post-create hook."""
    base, local_settings = php_server
    settings.DATA_DIR = tmp_path
    settings.FARM_WIKI_URL = base + "/{id}/"
    settings.FARM_DRIVERS = {
        "database": {
            "class": "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            "options": {
                "url": MARIADB_URL,
                "clusters": {},
                "schema_sql": str(MW_SCHEMA),
                "table_prefix": "",
                "post_create_hook": f"{CONTRIB / 'post-create-hook.sh'} {{wiki}} {{dbname}}",
            },
        },
        "storage": {
            "class": "provisioning.drivers.filesystem.FilesystemStorageDriver",
            "options": {"root": tmp_path / "storage"},
        },
        "search": {
            "class": "provisioning.drivers.local_search.LocalSearchDriver",
            "options": {"path": tmp_path / "search.sqlite3"},
        },
    }
    monkeypatch.delenv("MW_CONFIG_FILE", raising=False)
    monkeypatch.setenv("FARM_MW_DB_SERVER", "127.0.0.1")
    reset_drivers()
    created: list[str] = []
    yield base, local_settings, created
    _purge_leftovers(created)
    reset_drivers()


def _purge_leftovers(wiki_ids: list[str]) -> None:
    """Purge, through the portal, what a failed test left; drop only the derived names."""
    from django.contrib.auth import get_user_model

    ops = get_user_model().objects.get(username="opsuser")
    for wiki in Wiki.objects.filter(pk__in=wiki_ids).exclude(state=WikiState.PURGED):
        try:
            services.wiki_purge(actor=ops, wiki_id=wiki.pk, confirm=wiki.pk)
            run_pending()
        except Exception:  # noqa: S112 - best effort; the databases are dropped below
            continue
    connection = MySQLdb.connect(host="127.0.0.1", user="root", passwd="")
    try:
        for wiki_id in wiki_ids:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `wiki_{wiki_id}`")
    finally:
        connection.close()


def http(method: str, url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def anonymous_edit(base: str, wiki_id: str, title: str, text: str) -> dict:
    status, body = http(
        "POST",
        f"{base}/{wiki_id}/api.php",
        {
            "action": "edit",
            "title": title,
            "text": text,
            "token": ANONYMOUS_EDIT_TOKEN,
            "format": "json",
        },
    )
    assert status == 200, body[:2000]
    return json.loads(body)


def page(base: str, wiki_id: str, title: str) -> tuple[int, str]:
    return http("GET", f"{base}/{wiki_id}/index.php?title={urllib.parse.quote(title)}")


def maintenance_script(local_settings: Path, script: str, wiki_id: str):
    return subprocess.run(
        ["php", str(MW_PATH / "maintenance" / script), f"--wiki={wiki_id}"],
        env={**os.environ, "MW_CONFIG_FILE": str(local_settings)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def create_wiki(actor, wiki_id: str, sitename: str, created: list[str]) -> None:
    created.append(wiki_id)
    operation = services.wiki_create(
        actor=actor, wiki_id=wiki_id, family="default", sitename=sitename
    )
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error


def test_mediawiki_serves_the_wikis_the_portal_provisions(
    mediawiki_farm, ops_user, admin_user_a, monkeypatch
):
    base, local_settings, created = mediawiki_farm
    run = secrets.token_hex(3)
    wiki_a, wiki_b = f"mwa{run}", f"mwb{run}"
    create_wiki(admin_user_a, wiki_a, f"Alpha {run}", created)
    create_wiki(admin_user_a, wiki_b, f"Beta {run}", created)

    # Each serves its own Main Page, made by the post-create hook (install.php).
    for wiki_id, sitename in ((wiki_a, f"Alpha {run}"), (wiki_b, f"Beta {run}")):
        status, html = page(base, wiki_id, "Main Page")
        assert status == 200, html[:3000]
        assert "MediaWiki has been installed" in html
        assert f"<title>{sitename}</title>" in html  # the Main Page's title is the sitename
        status, users = http(
            "GET", f"{base}/{wiki_id}/api.php?action=query&list=users&ususers=Admin&format=json"
        )
        assert "userid" in json.loads(users)["query"]["users"][0]

    # An edit on one wiki is absent from the other.
    marker = f"Only on {wiki_a} ({run})"
    assert anonymous_edit(base, wiki_a, "Farm test", marker)["edit"]["result"] == "Success"
    status, html = page(base, wiki_a, "Farm test")
    assert status == 200 and marker in html
    status, html = page(base, wiki_b, "Farm test")
    assert status == 404 and marker not in html

    # A sitename changed in the portal appears once the publish writes the wiki's file,
    # and the other wiki's file is not rewritten.
    other_file = exports.wiki_file_path(wiki_b)
    other_before = other_file.stat().st_mtime_ns
    config.config_set(
        actor=admin_user_a,
        layer="wiki",
        target=wiki_a,
        setting="wgSitename",
        value=f"Renamed {run}",
    )
    status, html = page(base, wiki_a, "Main Page")
    assert f"<title>Alpha {run}</title>" in html  # not yet published
    publishing.publish(respect_window=False)
    status, html = page(base, wiki_a, "Main Page")
    assert f"<title>Renamed {run}</title>" in html
    assert other_file.stat().st_mtime_ns == other_before

    # While it is archived (published read-only, database not yet dropped), edits are
    # refused by MediaWiki itself; once archived, by the include.
    during_archive: list[dict] = []
    real_dump = STEP_FUNCTIONS[OperationKind.ARCHIVE]["dump_database"]

    def dump_after_trying_an_edit(ctx):
        during_archive.append(anonymous_edit(base, wiki_b, "Farm test", "too late"))
        return real_dump(ctx)

    monkeypatch.setitem(
        STEP_FUNCTIONS[OperationKind.ARCHIVE], "dump_database", dump_after_trying_an_edit
    )
    services.wiki_archive(actor=admin_user_a, wiki_id=wiki_b)
    run_pending()
    assert Wiki.objects.get(pk=wiki_b).state == WikiState.ARCHIVED
    assert during_archive[0]["error"]["code"] == "readonly", during_archive
    status, body = http(
        "POST",
        f"{base}/{wiki_b}/api.php",
        {"action": "edit", "title": "X", "text": "x", "token": ANONYMOUS_EDIT_TOKEN},
    )
    assert status == 503 and "archived" in body
    status, _ = page(base, wiki_a, "Main Page")
    assert status == 200

    # An unknown id is 404; a purged wiki is gone (410).
    status, _ = page(base, f"zz{run}", "Main Page")
    assert status == 404
    services.wiki_purge(actor=ops_user, wiki_id=wiki_b)
    run_pending()
    assert Wiki.objects.get(pk=wiki_b).state == WikiState.PURGED
    status, body = page(base, wiki_b, "Main Page")
    assert status == 410 and wiki_b in body
    assert json.loads(exports.wiki_file_path(wiki_b).read_bytes())["state"] == "purged"

    # Maintenance scripts pick the wiki with --wiki=<id>, through the same include.
    stats = maintenance_script(local_settings, "showSiteStats.php", wiki_a)
    assert stats.returncode == 0 and "Total edits" in stats.stdout, stats.stderr
    refused = maintenance_script(local_settings, "showSiteStats.php", wiki_b)
    assert refused.returncode != 0 and f"The wiki {wiki_b} was deleted" in refused.stderr

    services.wiki_purge(actor=ops_user, wiki_id=wiki_a, confirm=wiki_a)
    run_pending()
    assert Wiki.objects.get(pk=wiki_a).state == WikiState.PURGED
