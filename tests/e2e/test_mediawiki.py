"""End to end with Debian's MediaWiki 1.39, on both database drivers: the portal provisions
wikis (MariaDB with MediaWiki's schema, or SQLite files with MediaWiki's SQLite schema, each
completed by the post-create hook), exports them, and `php -S` serves them through
contrib/mediawiki/ (router.php, the farm's LocalSettings.php and FarmSettings.php) with no
hand-written settings. Everything is checked over HTTP.

Needs: `.ci/install-mediawiki.sh` (mediawiki, php-cli, php-mysql, php-sqlite3, ...), and
MariaDB for the MariaDB variant.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
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
PHP_MODULES = ("mysqli", "pdo_sqlite", "xml", "mbstring", "intl")
ANONYMOUS_EDIT_TOKEN = "+\\"

MW_SQLITE_SCHEMA = MW_PATH / "maintenance" / "sqlite" / "tables-generated.sql"
ADMIN_PASSWORD = "e2e-" + secrets.token_hex(8)


def require_mediawiki() -> None:
    php = shutil.which("php")
    if php is None or not MW_SCHEMA.is_file():
        service_unavailable("MediaWiki and PHP are not installed (.ci/install-mediawiki.sh)")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True).stdout
    missing = [m for m in PHP_MODULES if m not in modules.split()]
    if missing:
        service_unavailable(f"PHP lacks the modules {missing} (.ci/install-mediawiki.sh)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def php_server(tmp_path):
    """`php -S` with the router and the farm's own LocalSettings.php, configured only
    through its environment."""
    require_mediawiki()
    port = free_port()
    env = {
        **os.environ,
        "MW_CONFIG_FILE": str(CONTRIB / "LocalSettings.php"),
        "MW_INSTALL_PATH": str(MW_PATH),
        "FARM_EXPORT_DIR": str(tmp_path / "exports"),
        "FARM_MW_STATE_DIR": str(tmp_path / "mediawiki"),
        "FARM_MW_DB_USER": "root",
        "FARM_MW_SECRET_KEY": secrets.token_hex(32),
        "FARM_MW_DEBUG": "1",
        "PHP_CLI_SERVER_WORKERS": "4",  # readers poll while an operation runs
    }
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
    yield f"http://127.0.0.1:{port}", env
    server.terminate()
    server.wait(timeout=10)
    log.close()


def _drivers(kind: str, tmp_path: Path) -> dict:
    hook = f"{CONTRIB / 'post-create-hook.sh'} {{wiki}} {{dbname}}"
    if kind == "mariadb":
        if not port_open("127.0.0.1", 3306):
            service_unavailable("MariaDB is not listening on 127.0.0.1:3306")
        database = {
            "class": "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            "options": {
                "url": MARIADB_URL,
                "clusters": {},
                "schema_sql": str(MW_SCHEMA),
                "table_prefix": "",
                "post_create_hook": hook,
            },
        }
    else:
        database = {
            "class": "provisioning.drivers.sqlite.SQLiteDatabaseDriver",
            "options": {
                "root": tmp_path / "databases",
                "schema_sql": str(MW_SQLITE_SCHEMA),
                "table_prefix": "",
                "post_create_hook": hook + " {path}",
            },
        }
    return {
        "database": database,
        "storage": {
            "class": "provisioning.drivers.filesystem.FilesystemStorageDriver",
            "options": {"root": tmp_path / "storage"},
        },
        "search": {
            "class": "provisioning.drivers.local_search.LocalSearchDriver",
            "options": {"path": tmp_path / "search.sqlite3"},
        },
    }


@pytest.fixture(params=[pytest.param("mariadb", marks=pytest.mark.mariadb), "sqlite"])
def mediawiki_farm(request, settings, tmp_path, php_server, monkeypatch):
    """The portal with a database driver and MediaWiki's schema and post-create hook."""
    base, env = php_server
    settings.DATA_DIR = tmp_path
    settings.FARM_WIKI_URL = base + "/{id}/"
    settings.FARM_DRIVERS = _drivers(request.param, tmp_path)
    settings.FARM_OFFLINE_DRAIN_SECONDS = 3.0  # MediaWiki really serves these wikis
    monkeypatch.delenv("MW_CONFIG_FILE", raising=False)
    monkeypatch.setenv("FARM_MW_DB_SERVER", "127.0.0.1")
    password_file = tmp_path / "admin-password"
    password_file.write_text(ADMIN_PASSWORD)
    monkeypatch.setenv("FARM_MW_ADMIN_PASSWORD_FILE", str(password_file))
    reset_drivers()
    created: list[str] = []
    yield base, env, created
    if request.param == "mariadb":
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


def maintenance_script(env: dict, script: str, wiki_id: str):
    return subprocess.run(
        ["php", str(MW_PATH / "maintenance" / script), f"--wiki={wiki_id}"],
        env=env,
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
    base, env, created = mediawiki_farm
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
    stats = maintenance_script(env, "showSiteStats.php", wiki_a)
    assert stats.returncode == 0 and "Total edits" in stats.stdout, stats.stderr
    refused = maintenance_script(env, "showSiteStats.php", wiki_b)
    assert refused.returncode != 0 and f"The wiki {wiki_b} was deleted" in refused.stderr

    services.wiki_purge(actor=ops_user, wiki_id=wiki_a, confirm=wiki_a)
    run_pending()
    assert Wiki.objects.get(pk=wiki_a).state == WikiState.PURGED


class Browser:
    """A MediaWiki client with its own cookies (logins are sessions)."""

    def __init__(self, base: str, wiki_id: str):
        self.api = f"{base}/{wiki_id}/api.php"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, params: dict, *, files: dict | None = None) -> dict:
        params = {**params, "format": "json"}
        if files:
            body, content_type = multipart(params, files)
            request = urllib.request.Request(self.api, data=body, method="POST")  # noqa: S310
            request.add_header("Content-Type", content_type)
        else:
            data = urllib.parse.urlencode(params).encode()
            request = urllib.request.Request(self.api, data=data, method="POST")  # noqa: S310
        with self.opener.open(request, timeout=60) as response:
            return json.loads(response.read())

    def login(self, user: str, password: str) -> dict:
        token = self.call({"action": "query", "meta": "tokens", "type": "login"})
        return self.call(
            {
                "action": "login",
                "lgname": user,
                "lgpassword": password,
                "lgtoken": token["query"]["tokens"]["logintoken"],
            }
        )

    def csrf_token(self) -> str:
        return self.call({"action": "query", "meta": "tokens"})["query"]["tokens"]["csrftoken"]


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = "farm" + secrets.token_hex(8)
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + f"{value}\r\n".encode()
        )
    for name, (filename, data) in files.items():
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# A 1x1 PNG: the smallest image MediaWiki accepts as a file.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def test_mediawiki_side_of_the_farm(mediawiki_farm, ops_user, admin_user_a):
    """Login, ResourceLoader, the farm index, and a closed wiki refusing edits and logins."""
    base, env, created = mediawiki_farm
    run = secrets.token_hex(3)
    wiki = f"mwc{run}"
    create_wiki(admin_user_a, wiki, f"Closing {run}", created)

    status, script = http("GET", f"{base}/{wiki}/load.php?modules=startup&only=scripts")
    assert status == 200 and "mw.loader" in script
    status, index = http("GET", f"{base}/")
    assert status == 200 and f'href="/{wiki}/"' in index
    status, missing = http("GET", f"{base}/zz{run}/index.php")
    assert status == 404 and f"There is no wiki zz{run}" in missing

    admin = Browser(base, wiki)
    assert admin.login("Admin", ADMIN_PASSWORD)["login"]["result"] == "Success"

    services.wiki_close(actor=ops_user, wiki_id=wiki, reason=f"Frozen {run}")
    run_pending()
    closed = (Path(env["FARM_EXPORT_DIR"]) / "dblists" / "closed.dblist").read_text()
    assert wiki in closed.split()
    status, html = page(base, wiki, "Main Page")
    assert status == 200 and f"Closing {run}" in html  # still served
    status, html = http("GET", f"{base}/{wiki}/index.php?title=Main_Page&action=edit")
    assert f"Frozen {run}" in html  # the edit page says why it is read-only
    refused = anonymous_edit(base, wiki, "Farm test", "while closed")
    assert refused["error"]["code"] == "readonly", refused
    assert refused["error"].get("readonlyreason") == f"Frozen {run}", refused
    login = Browser(base, wiki).login("Admin", ADMIN_PASSWORD)
    assert "readonly" in json.dumps(login).lower() or login.get("error", {}).get("code") == (
        "readonly"
    ), login

    services.wiki_reopen(actor=ops_user, wiki_id=wiki)
    run_pending()
    assert anonymous_edit(base, wiki, "Farm test", "reopened")["edit"]["result"] == "Success"


def test_no_error_window_through_archive_and_unarchive(mediawiki_farm, ops_user, admin_user_a):
    """A reader polling the wiki all along sees it served (200) or refused with 503, never
    a database error."""
    base, _, created = mediawiki_farm
    run = secrets.token_hex(3)
    wiki = f"mwp{run}"
    create_wiki(admin_user_a, wiki, f"Polled {run}", created)
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            status, body = page(base, wiki, "Main Page")
            statuses.append(status)
            if status not in (200, 503):
                errors.append(body[:600])
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        services.wiki_archive(actor=admin_user_a, wiki_id=wiki)
        run_pending()
        time.sleep(0.3)
        request = services.unarchive_request(actor=admin_user_a, wiki_id=wiki, reason="back")
        services.unarchive_approve(actor=ops_user, request_id=request.pk)
        run_pending()
        time.sleep(0.3)
    finally:
        stop.set()
        poller.join(timeout=30)
    assert Wiki.objects.get(pk=wiki).state == WikiState.ACTIVE
    assert set(statuses) <= {200, 503}, (statuses, errors)
    assert 503 in statuses and statuses[-1] == 200


def test_uploads_live_in_the_wikis_storage_namespace(mediawiki_farm, ops_user, admin_user_a):
    base, env, created = mediawiki_farm
    run = secrets.token_hex(3)
    wiki, other = f"mwu{run}", f"mwo{run}"
    create_wiki(admin_user_a, wiki, f"Uploads {run}", created)
    create_wiki(admin_user_a, other, f"Other {run}", created)
    config.config_set(
        actor=ops_user, layer="wiki", target=wiki, setting="wgEnableUploads", value=True
    )
    publishing.publish(respect_window=False)

    admin = Browser(base, wiki)
    assert admin.login("Admin", ADMIN_PASSWORD)["login"]["result"] == "Success"
    name = f"Pixel-{run}.png"
    uploaded = admin.call(
        {"action": "upload", "filename": name, "token": admin.csrf_token(), "ignorewarnings": 1},
        files={"file": (name, PIXEL)},
    )
    assert uploaded.get("upload", {}).get("result") == "Success", uploaded
    url = uploaded["upload"]["imageinfo"]["url"]
    path = urllib.parse.urlsplit(url).path
    assert path.startswith(f"/{wiki}/images/"), url
    storage = Path(env["FARM_EXPORT_DIR"]).parent / "storage" / "wikis" / wiki
    stored = storage / path.removeprefix(f"/{wiki}/images/")
    assert stored.read_bytes() == PIXEL

    def fetch(wiki_id: str) -> tuple[int, bytes]:
        target = f"{base}/{wiki_id}/images/" + path.removeprefix(f"/{wiki}/images/")
        try:
            with urllib.request.urlopen(target, timeout=30) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""

    assert fetch(wiki) == (200, PIXEL)
    assert fetch(other)[0] == 404  # another wiki never sees it
    assert fetch(wiki.replace("mwu", "mwx"))[0] == 404

    services.wiki_archive(actor=admin_user_a, wiki_id=wiki)
    run_pending()
    assert fetch(wiki)[0] == 503
    request = services.unarchive_request(actor=admin_user_a, wiki_id=wiki, reason="back")
    services.unarchive_approve(actor=ops_user, request_id=request.pk)
    run_pending()
    assert fetch(wiki) == (200, PIXEL)  # it survives archive and unarchive

    services.wiki_purge(actor=ops_user, wiki_id=wiki, confirm=wiki)
    run_pending()
    assert not storage.exists()
    assert fetch(wiki)[0] == 410


def test_migration_run_of_update_php_on_the_farm_wikis(
    mediawiki_farm, ops_user, admin_user_a, monkeypatch
):
    """MediaWiki's own update.php as a farm-wide migration run: without a shell, once per
    wiki with {wiki} substituted, recorded so that a rerun skips the wikis."""
    from provisioning import runs
    from provisioning.models import RunItemState, RunState
    from tests.provisioning.helpers import run_runs

    base, env, created = mediawiki_farm
    tag = secrets.token_hex(3)
    wiki_ids = [f"mwu{tag}", f"mwv{tag}"]
    for wiki_id in wiki_ids:
        create_wiki(admin_user_a, wiki_id, f"Update {wiki_id}", created)
    # update.php reads the farm's LocalSettings.php as php -S does: the same environment.
    for name in ("MW_CONFIG_FILE", "MW_INSTALL_PATH", "FARM_EXPORT_DIR", "FARM_MW_STATE_DIR",
                 "FARM_MW_DB_USER", "FARM_MW_SECRET_KEY"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    params = {
        "migration": f"mw-update-{tag}",
        "command": f"php {MW_PATH / 'maintenance' / 'update.php'} --quick --wiki={{wiki}}",
    }
    run = runs.run_create(
        actor=ops_user, kind="migrate", selection={"wiki_ids": wiki_ids}, params=params
    )
    run_runs()
    run.refresh_from_db()
    report = runs.report(run)
    assert run.state == RunState.FINISHED and report["succeeded"] == 2, report
    for item in report["items"]:
        assert "Done" in item["output_tail"], item  # update.php's own last line
    for wiki_id in wiki_ids:
        status, html = page(base, wiki_id, "Main Page")
        assert status == 200 and "MediaWiki has been installed" in html

    rerun = runs.run_create(
        actor=ops_user, kind="migrate", selection={"wiki_ids": wiki_ids}, params=params
    )
    run_runs()
    assert set(rerun.items.values_list("state", flat=True)) == {RunItemState.SKIPPED}
