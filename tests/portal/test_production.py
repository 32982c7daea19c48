"""Production settings: secure by default (check --deploy is clean), the demo off unless
FARM_DEMO=1, and a cache shared by every process (Redis)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.cache.backends.redis import RedisCache
from django.core.management import CommandError, call_command
from django.urls import reverse

from farm.api.throttling import WikiCreateRateThrottle
from farm.management.commands.farm_seed_demo import DEMO_USERS
from tests.services import port_open, service_unavailable

ROOT = Path(__file__).resolve().parents[2]
# Variables that decide what production means and how it is configured: each test says
# which of them it sets, whatever the environment running the tests has.
DECIDING = (
    "DATABASE_URL",
    "DJANGO_DEBUG",
    "FARM_DEMO",
    "FARM_CACHE_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_SECURE_HSTS_SECONDS",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "DJANGO_SECURE_HSTS_PRELOAD",
    "DJANGO_SESSION_COOKIE_SECURE",
    "DJANGO_CSRF_COOKIE_SECURE",
    "DJANGO_SECURE_PROXY_SSL_HEADER",
)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What an operator sets: a registry of its own, a real secret, the hosts, Redis."""
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "portal.example.org",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        **extra,
    }


def run(args: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in DECIDING}
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**base, "FARM_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def settings_under(tmp_path: Path, env: dict[str, str]) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({name: getattr(s, name, None) for name in ("
        "'PRODUCTION', 'FARM_DEMO', 'DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SESSION_COOKIE_SECURE', "
        "'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'CACHES')}))"
    )
    result = run(
        [sys.executable, "-c", code], tmp_path, {"DJANGO_SETTINGS_MODULE": "portal.settings", **env}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- secure settings -------------------------------------------------------------------


def test_check_deploy_is_clean_under_the_production_environment(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        production_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_still_warns_when_a_secure_default_is_switched_off(tmp_path):
    # The proof above means something: the deploy checks do run and see these settings.
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        production_env(tmp_path, DJANGO_SECURE_SSL_REDIRECT="0"),
    )
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": "sqlite:///{tmp}/r.sqlite3", "DJANGO_SECRET_KEY": "x" * 60},
        {"DJANGO_DEBUG": "0"},
    ],
    ids=["database-url", "debug-0"],
)
def test_production_is_secure_by_default(tmp_path, env):
    env = {key: value.replace("{tmp}", str(tmp_path)) for key, value in env.items()}
    found = settings_under(tmp_path, env)
    assert found["PRODUCTION"] is True and found["DEBUG"] is False
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SECURE_HSTS_SECONDS"] == 365 * 86400
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_HSTS_PRELOAD"] is True
    assert found["SESSION_COOKIE_SECURE"] is True and found["CSRF_COOKIE_SECURE"] is True
    assert found["FARM_DEMO"] is False


def test_the_embedded_default_is_not_production(tmp_path):
    found = settings_under(tmp_path, {})
    assert found["PRODUCTION"] is False and found["FARM_DEMO"] is True
    assert found["SECURE_SSL_REDIRECT"] is False and found["SECURE_HSTS_SECONDS"] == 0
    assert found["SESSION_COOKIE_SECURE"] is False
    assert found["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_each_secure_setting_has_its_switch(tmp_path):
    found = settings_under(
        tmp_path,
        production_env(
            tmp_path,
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_SECURE_HSTS_SECONDS="3600",
            DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
            DJANGO_SECURE_HSTS_PRELOAD="0",
            DJANGO_SESSION_COOKIE_SECURE="0",
            DJANGO_CSRF_COOKIE_SECURE="0",
            DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        ),
    )
    assert found["SECURE_SSL_REDIRECT"] is False
    assert found["SECURE_HSTS_SECONDS"] == 3600
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert found["SECURE_HSTS_PRELOAD"] is False
    assert found["SESSION_COOKIE_SECURE"] is False and found["CSRF_COOKIE_SECURE"] is False
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_bad_proxy_header_name_stops_the_start(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check"],
        tmp_path,
        production_env(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https"),
    )
    assert result.returncode != 0
    assert "DJANGO_SECURE_PROXY_SSL_HEADER" in result.stderr


# --- the demo --------------------------------------------------------------------------


def test_the_demo_seed_refuses_to_run_with_production_settings(tmp_path):
    result = run(
        [sys.executable, "manage.py", "farm_seed_demo"], tmp_path, production_env(tmp_path)
    )
    assert result.returncode != 0
    assert "refuses to run with production settings" in result.stderr
    assert "FARM_DEMO=1" in result.stderr


def test_farm_demo_1_turns_the_demo_on_in_production(tmp_path):
    assert settings_under(tmp_path, production_env(tmp_path, FARM_DEMO="1"))["FARM_DEMO"] is True


@pytest.mark.django_db
def test_the_seed_creates_nothing_when_the_demo_is_off(settings, django_user_model):
    settings.FARM_DEMO = False
    with pytest.raises(CommandError, match="FARM_DEMO=1"):
        call_command("farm_seed_demo")
    assert not django_user_model.objects.exists()


@pytest.mark.django_db
def test_the_login_page_has_no_demo_login_when_the_demo_is_off(client, settings):
    settings.FARM_DEMO = False
    page = client.get(reverse("login")).content.decode()
    assert "Demo login" not in page and "demo-wiki-admin" not in page
    assert 'name="password"' not in page
    assert "No sign-in is configured" in page
    assert client.post(reverse("login"), {"username": "x", "password": "y"}).status_code == 405


@pytest.mark.django_db
def test_demo_passwords_do_not_work_when_the_demo_is_off(settings):
    settings.FARM_DEMO = True
    call_command("farm_seed_demo")  # the embedded default: a registry seeded once
    username, _, password = DEMO_USERS[2]  # ops, a staff user: the Django admin too
    assert authenticate(username=username, password=password) is not None
    settings.FARM_DEMO = False
    assert authenticate(username=username, password=password) is None


# --- the shared cache ------------------------------------------------------------------


def test_production_caches_in_the_brokers_redis_on_the_next_database(tmp_path):
    cache = settings_under(tmp_path, production_env(tmp_path))["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/1"


def test_farm_cache_url_names_the_cache(tmp_path):
    env = production_env(tmp_path, FARM_CACHE_URL="redis://cache.example.org:6380/4")
    cache = settings_under(tmp_path, env)["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://cache.example.org:6380/4"


@pytest.mark.redis
@pytest.mark.django_db
def test_two_processes_caches_share_one_throttle_count(settings, django_user_model):
    """Two cache clients with their own connections, as two web processes have: a rate of
    two creations per hour is spent across both, which per-process caches never do."""
    if not port_open("127.0.0.1", 6379):
        service_unavailable("Redis is not running on 127.0.0.1:6379")
    settings.FARM_API_CREATE_RATE = "2/hour"
    prefix = "farm-test-" + secrets.token_hex(4)
    first, second = (
        RedisCache("redis://127.0.0.1:6379/15", {"KEY_PREFIX": prefix}) for _ in range(2)
    )
    assert first._cache.get_client() is not second._cache.get_client()
    user = django_user_model.objects.create_user("thrower")

    class Request:
        pass

    request = Request()
    request.user = user  # type: ignore[attr-defined]

    def allowed(cache) -> bool:
        throttle = WikiCreateRateThrottle()
        throttle.cache = cache
        return throttle.allow_request(request, None)

    try:
        assert allowed(first) and allowed(second)
        assert not allowed(first) and not allowed(second)
    finally:
        first.delete(
            WikiCreateRateThrottle.cache_format % {"scope": "wiki_create", "ident": user.pk}
        )
