"""Settings of the portal, read from the environment.

With no variable set you get the embedded default: registry in SQLite, Celery on kombu's
filesystem transport, and the sqlite / filesystem / local drivers, all under FARM_DATA_DIR
(default ``var/``). A production integration is switched on by its variables
(FARM_DB_URL, FARM_S3_BUCKET, OPENSEARCH_URL, CELERY_BROKER_URL, DATABASE_URL) and the
portal refuses to start when one is half configured.
"""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Production: a registry of its own (DATABASE_URL) or DEBUG switched off in so many words.
# Then HTTPS, HSTS and secure cookies are on by default, the cache is shared (Redis) and the
# demo (farm_seed_demo, the demo login) is off unless FARM_DEMO=1.
PRODUCTION = "DATABASE_URL" in env or ("DJANGO_DEBUG" in env and not DEBUG)
FARM_DEMO = env.bool("FARM_DEMO", default=not PRODUCTION)
DATA_DIR = Path(env.str("FARM_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if "DJANGO_SECRET_KEY" in env:
        return env.str("DJANGO_SECRET_KEY")
    if "DATABASE_URL" in env:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required outside the embedded default.")
    # Embedded default only (SQLite registry): a random key kept in the data dir.
    from django.core.management.utils import get_random_secret_key

    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc served from our static files: the API docs work with no internet.
    "drf_spectacular_sidecar",
    "django_prometheus",
    "mozilla_django_oidc",
    "farm",
    "provisioning",
]

MIDDLEWARE = [
    # First and last: django-prometheus times the whole stack and counts every response.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Before anything that logs: every line of the request carries its id (portal/logs.py).
    "portal.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files under gunicorn too (the Docker image), not only runserver.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The portal's 404 page under DEBUG too: never Django's technical page listing URLs.
    "portal.not_found.PortalNotFoundMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The registry. SQLite in WAL mode with IMMEDIATE transactions lets the web process, the
# worker and beat write the same file without "database is locked" surprises.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'registry.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-registry.sqlite3")}
# django-prometheus's engines are Django's own with query and error counters around them.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # collectstatic's target, served by WhiteNoise
# The image collects them when it is built, outside the data volume mounted at run time.
if "DJANGO_STATIC_ROOT" in env:
    STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT"))
STATIC_ROOT.mkdir(exist_ok=True)

# --- HTTPS, HSTS and cookies (docs/deploy.md) ------------------------------------------
# Secure by default in production, each switch with its variable. Behind a proxy that ends
# TLS, name the header it sets (DJANGO_SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto) or the
# redirect to https never ends. Probes talk plain HTTP to the pod: they are not redirected.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
_ONE_YEAR = 365 * 86400
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=_ONE_YEAR if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=PRODUCTION)
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
if _proxy_ssl_header:
    if not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_ssl_header):
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_PROXY_SSL_HEADER={_proxy_ssl_header!r} must be a header name such "
            "as X-Forwarded-Proto (its value https marks a request that came in over TLS)."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")


# --- Cache (DRF throttles, the OIDC userinfo cache) -------------------------------------
# Shared by every process in production: FARM_CACHE_URL (redis://host:6379/1), else the
# broker's Redis server on the next database number. Per process (locmem) otherwise.
def _cache() -> dict[str, Any]:
    if "FARM_CACHE_URL" in env:
        return env.cache_url("FARM_CACHE_URL")
    broker = urlsplit(env.str("CELERY_BROKER_URL", default=""))
    if PRODUCTION and broker.scheme in ("redis", "rediss"):
        database = int(broker.path.strip("/") or 0) + 1
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": urlunsplit(broker._replace(path=f"/{database}")),
        }
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


CACHES = {"default": {"KEY_PREFIX": "farm", **_cache()}}

# --- Celery ----------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport (polling 0.1 s). It can lose a message on a
# crash; the operation sweeper re-queues what was lost, so that is harmless.
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic writes and claims (portal/broker.py).
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    # acks_late tasks are redelivered after the visibility timeout: keep it far above the
    # longest operation so a slow archive is never run twice in parallel.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Export publishing has a queue of its own, so a burst of creates never holds a settings
# change back: every worker consumes both queues unless started with -Q, and the farm runs
# one worker on "exports" alone (Procfile, compose.yaml), which always has a free slot.
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Farm-wide runs (backup, migrate, inventory) have theirs too, so self-service creates stay
# fast while a run works: the farm runs a worker pool on "runs" (Procfile, compose.yaml).
CELERY_TASK_QUEUES = (Queue("celery"), Queue("exports"), Queue("runs"))
CELERY_TASK_ROUTES = {
    "farm.tasks.publish_exports": {"queue": "exports"},
    "provisioning.tasks.dispatch_run": {"queue": "runs"},
    "provisioning.tasks.inventory_batch": {"queue": "runs"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-operations": {
        "task": "provisioning.tasks.sweep_stuck_operations",
        "schedule": env.float("FARM_SWEEP_INTERVAL", default=30.0),
    },
    # The safety net of coalesced publishing: finishes a publish whose message was lost or
    # whose worker was killed (it does nothing while no wiki is dirty).
    "publish-exports": {
        "task": "farm.tasks.publish_exports",
        "schedule": env.float("FARM_SWEEP_INTERVAL", default=30.0),
    },
    # Moves runs along whose dispatch message was lost (a worker killed mid-dispatch).
    "dispatch-runs": {
        "task": "provisioning.tasks.dispatch_active_runs",
        "schedule": env.float("FARM_SWEEP_INTERVAL", default=30.0),
    },
}

# --- Farm --------------------------------------------------------------------------------
FARM_WIKI_QUOTA = env.int("FARM_WIKI_QUOTA", default=10)
# Where MediaWiki serves a wiki ({id} is replaced); goes into farm.json and wgServer.
FARM_WIKI_URL = env.str("FARM_WIKI_URL", default="http://localhost/{id}/")
if not re.fullmatch(r"https?://[^\s{}]*\{id\}[^\s{}]*", FARM_WIKI_URL):
    raise ImproperlyConfigured(
        f"FARM_WIKI_URL={FARM_WIKI_URL!r} must be an http(s) URL with {{id}} once in its host "
        "or path and no other braces, e.g. https://wikis.example.org/{id}/"
    )
# Seconds a publish waits for more changes, and the least time between two rewrites of the
# farm-wide export files (farm.json, hosts.json, dblists, siteconfig.json).
FARM_EXPORT_PUBLISH_WINDOW = env.float("FARM_EXPORT_PUBLISH_WINDOW", default=2.0)
FARM_ARCHIVE_RETENTION_DAYS = env.int("FARM_ARCHIVE_RETENTION_DAYS", default=90)
FARM_UNARCHIVE_TWO_PERSON_RULE = env.bool("FARM_UNARCHIVE_TWO_PERSON_RULE", default=False)
# Seconds between MediaWiki answering 503 for a wiki and its database being dropped
# (archive, purge of a served wiki): requests already rendering finish first.
FARM_OFFLINE_DRAIN_SECONDS = env.float("FARM_OFFLINE_DRAIN_SECONDS", default=3.0)
# Ops close and reopen wikis; with this on, so may each wiki's own admins.
FARM_OWNERS_MAY_CLOSE = env.bool("FARM_OWNERS_MAY_CLOSE", default=False)
# A RUNNING operation whose heartbeat is older than this is presumed lost and re-queued;
# a PENDING one older than FARM_PENDING_REQUEUE_AFTER has probably lost its message.
FARM_OPERATION_STUCK_AFTER = env.int("FARM_OPERATION_STUCK_AFTER", default=15 * 60)
FARM_PENDING_REQUEUE_AFTER = env.int("FARM_PENDING_REQUEUE_AFTER", default=60)
FARM_TRANSIENT_RETRIES = env.int("FARM_TRANSIENT_RETRIES", default=5)
FARM_SCHEMA_SQL = env.str(
    "FARM_SCHEMA_SQL", default=str(BASE_DIR / "provisioning" / "schema" / "demo.sql")
)
FARM_TABLE_PREFIX = env.str("FARM_TABLE_PREFIX", default="")
FARM_POST_CREATE_HOOK = env.str("FARM_POST_CREATE_HOOK", default="")


def _driver_settings() -> dict[str, dict[str, Any]]:
    """Pick each resource driver from the variables that switch its production mode on."""
    drivers: dict[str, dict[str, Any]] = {
        "database": {
            "class": "provisioning.drivers.sqlite.SQLiteDatabaseDriver",
            "options": {
                "root": DATA_DIR / "databases",
                "schema_sql": FARM_SCHEMA_SQL,
                "table_prefix": FARM_TABLE_PREFIX,
                "post_create_hook": FARM_POST_CREATE_HOOK,
            },
        },
        "storage": {
            "class": "provisioning.drivers.filesystem.FilesystemStorageDriver",
            "options": {"root": DATA_DIR / "storage"},
        },
        "search": {
            "class": "provisioning.drivers.local_search.LocalSearchDriver",
            "options": {"path": DATA_DIR / "search.sqlite3"},
        },
    }
    if "FARM_DB_URL" in env:
        drivers["database"] = {
            "class": "provisioning.drivers.mariadb.MariaDBDatabaseDriver",
            "options": {
                "url": env.str("FARM_DB_URL"),
                "clusters": env.json("FARM_DB_CLUSTERS", default={}),
                "schema_sql": FARM_SCHEMA_SQL,
                "table_prefix": FARM_TABLE_PREFIX,
                "post_create_hook": FARM_POST_CREATE_HOOK,
            },
        }
    if "FARM_S3_BUCKET" in env:
        drivers["storage"] = {
            "class": "provisioning.drivers.s3.S3StorageDriver",
            "options": {
                "bucket": env.str("FARM_S3_BUCKET"),
                "bucket_per_wiki": env.bool("FARM_S3_BUCKET_PER_WIKI", default=False),
                "endpoint_url": env.str("FARM_S3_ENDPOINT_URL", default=None),
                "region": env.str("FARM_S3_REGION", default="us-east-1"),
                "access_key": env.str("FARM_S3_ACCESS_KEY_ID", default=None),
                "secret_key": env.str("FARM_S3_SECRET_ACCESS_KEY", default=None),
                "addressing_style": env.str("FARM_S3_ADDRESSING_STYLE", default="auto"),
            },
        }
        if bool(drivers["storage"]["options"]["access_key"]) != bool(
            drivers["storage"]["options"]["secret_key"]
        ):
            raise ImproperlyConfigured(
                "FARM_S3_ACCESS_KEY_ID and FARM_S3_SECRET_ACCESS_KEY must be set together."
            )
    if "OPENSEARCH_URL" in env:
        drivers["search"] = {
            "class": "provisioning.drivers.opensearch.OpenSearchDriver",
            "options": {
                "url": env.str("OPENSEARCH_URL"),
                "index_prefix": env.str("OPENSEARCH_INDEX_PREFIX", default=""),
            },
        }
    return drivers


FARM_DRIVERS = _driver_settings()

# --- Farm-wide runs, size classes, backups (provisioning/runs.py, inventory.py) ----------
# Usage and size class of every wiki (a run of kind inventory) by beat; 0 turns it off.
FARM_INVENTORY_INTERVAL = env.float("FARM_INVENTORY_INTERVAL", default=24 * 3600.0)
if FARM_INVENTORY_INTERVAL > 0:
    CELERY_BEAT_SCHEDULE["inventory"] = {
        "task": "provisioning.tasks.scheduled_inventory",
        "schedule": FARM_INVENTORY_INTERVAL,
    }
# Size classes from the seed: small < 500 pages and < 1 GB; medium < 5,000 pages and
# < 10 GB; large < 50,000 pages (any size); xlarge beyond. Bytes are database + storage.
FARM_SIZE_CLASS_LIMITS = {
    "small": {
        "pages": env.int("FARM_SIZE_SMALL_PAGES", default=500),
        "bytes": env.int("FARM_SIZE_SMALL_BYTES", default=10**9),
    },
    "medium": {
        "pages": env.int("FARM_SIZE_MEDIUM_PAGES", default=5000),
        "bytes": env.int("FARM_SIZE_MEDIUM_BYTES", default=10 * 10**9),
    },
    "large": {
        "pages": env.int("FARM_SIZE_LARGE_PAGES", default=50000),
        "bytes": env.int("FARM_SIZE_LARGE_BYTES", default=0),  # 0: no limit
    },
}
# Items of one class running at once, by default; a run may give its own.
FARM_RUN_PARALLELISM = env.json(
    "FARM_RUN_PARALLELISM",
    default={"small": 8, "medium": 4, "large": 2, "xlarge": 1, "unknown": 1},
)
FARM_BACKUP_KEEP = env.int("FARM_BACKUP_KEEP", default=3)
FARM_MIGRATION_COMMAND_TIMEOUT = env.int("FARM_MIGRATION_COMMAND_TIMEOUT", default=3600)
FARM_INVENTORY_BATCH = env.int("FARM_INVENTORY_BATCH", default=200)


def _archive_storage() -> dict[str, Any]:
    """Where archive and backup files go, through Django's storage API (django-storages):
    the storage driver's own folder or bucket, so archives/<id>/ stays where purge looks."""
    if "FARM_S3_BUCKET" in env:
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env.str("FARM_ARCHIVE_BUCKET", default=env.str("FARM_S3_BUCKET")),
                "endpoint_url": env.str("FARM_S3_ENDPOINT_URL", default=None),
                "region_name": env.str("FARM_S3_REGION", default="us-east-1"),
                "access_key": env.str("FARM_S3_ACCESS_KEY_ID", default=None),
                "secret_key": env.str("FARM_S3_SECRET_ACCESS_KEY", default=None),
                "addressing_style": env.str("FARM_S3_ADDRESSING_STYLE", default="auto"),
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
                # Opaque bytes: a guessed Content-Encoding: gzip for *.gz would let a client
                # hand back decompressed bytes that no longer match the manifest's sha256.
                "object_parameters": {"ContentType": "application/octet-stream"},
                # A download past 8 MiB spools to disk instead of the worker's memory.
                "max_memory_size": 8 * 1024 * 1024,
            },
        }
    return {
        "BACKEND": "provisioning.sinks.AtomicFileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "storage"), "allow_overwrite": True},
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "farm_archives": _archive_storage(),
}

# --- OIDC bearer tokens for the API -----------------------------------------------------
# Switched on by OIDC_OP_USER_ENDPOINT and OIDC_RP_CLIENT_ID together; the API then accepts
# the provider's access tokens (mozilla-django-oidc asks the userinfo endpoint, cached).
OIDC_API_ENABLED = "OIDC_OP_USER_ENDPOINT" in env or "OIDC_RP_CLIENT_ID" in env
if OIDC_API_ENABLED:
    _missing = [
        name
        for name in ("OIDC_OP_USER_ENDPOINT", "OIDC_RP_CLIENT_ID", "OIDC_OP_TOKEN_ENDPOINT")
        if name not in env
    ]
    if _missing:
        raise ImproperlyConfigured(f"OIDC is half configured: {', '.join(_missing)} missing.")
    OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default=None)
    OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
    # mozilla-django-oidc's default; RS*/ES* need the provider's keys, checked here at start.
    OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="HS256")
    if OIDC_RP_SIGN_ALGO[:2] in ("RS", "ES") and not OIDC_OP_JWKS_ENDPOINT:
        raise ImproperlyConfigured(f"OIDC_RP_SIGN_ALGO={OIDC_RP_SIGN_ALGO} needs a JWKS endpoint.")
    OIDC_DRF_AUTH_BACKEND = env.str("OIDC_DRF_AUTH_BACKEND", default="portal.auth.FarmOIDCBackend")

# --- Logging in to the web UI -----------------------------------------------------------
# With OIDC_OP_AUTHORIZATION_ENDPOINT set (on top of the API variables above), people sign in
# at the provider: authorization code flow with PKCE, users matched by their user name
# claim, roles from the groups claim on every login (portal/auth.py). Without it, the login
# page offers a local username/password form for the seeded demo users, and says so.
AUTHENTICATION_BACKENDS = ["portal.auth.LocalAccountsBackend"]  # refuses demo passwords
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "wiki-list"
LOGOUT_REDIRECT_URL = "login"
OIDC_LOGIN_ENABLED = "OIDC_OP_AUTHORIZATION_ENDPOINT" in env
if OIDC_LOGIN_ENABLED:
    _required = ("OIDC_OP_USER_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_RP_CLIENT_ID")
    # A confidential client: the code flow sends the secret with the code (PKCE on top).
    _missing = [name for name in (*_required, "OIDC_RP_CLIENT_SECRET") if not env.str(name, "")]
    if _missing:
        raise ImproperlyConfigured(f"OIDC login is half configured: {', '.join(_missing)} missing.")
    AUTHENTICATION_BACKENDS.append("portal.auth.FarmOIDCBackend")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT")
    # The provider's end_session endpoint: logging out of the portal ends the IdP session too.
    OIDC_OP_LOGOUT_ENDPOINT = env.str("OIDC_OP_LOGOUT_ENDPOINT", default="")
    OIDC_OP_LOGOUT_URL_METHOD = "portal.auth.provider_logout_url"
    OIDC_STORE_ID_TOKEN = True  # the id_token_hint of that logout
    OIDC_USE_PKCE = True
    # A custom groups claim needs its scope here and arrives through userinfo.
    OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile groups")
    LOGIN_REDIRECT_URL_FAILURE = "/login/?failed=1"
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="your organisation's sign-in")
OIDC_USERNAME_CLAIM = env.str("OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
# Provider group -> portal role; by default the groups carry the role names themselves.
FARM_OIDC_ROLE_MAP = env.json(
    "FARM_OIDC_ROLE_MAP", default={"wiki-admin": "wiki-admin", "ops": "ops", "auditor": "auditor"}
)

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a request without credentials a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "farm.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        *(["farm.api.authentication.CachedOIDCAuthentication"] if OIDC_API_ENABLED else []),
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "farm.api.permissions.TokenScope",
    ],
    "DEFAULT_PARSER_CLASSES": ["farm.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "farm.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "farm.api.exceptions.api_exception_handler",
}
# Per-user wiki creations through the API, e.g. "30/hour" ("" switches the limit off).
FARM_API_CREATE_RATE = env.str("FARM_API_CREATE_RATE", default="30/hour")
FARM_API_IDEMPOTENCY_TTL_SECONDS = env.int("FARM_API_IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)
FARM_API_TOKEN_DEFAULT_DAYS = env.int("FARM_API_TOKEN_DEFAULT_DAYS", default=90)
FARM_API_TOKEN_MAX_DAYS = env.int("FARM_API_TOKEN_MAX_DAYS", default=366)
FARM_OIDC_USERINFO_CACHE_SECONDS = env.int("FARM_OIDC_USERINFO_CACHE_SECONDS", default=60)

SPECTACULAR_SETTINGS = {
    "TITLE": "Wiki farm portal API",
    "DESCRIPTION": "Provision, archive, unarchive and purge wikis of the farm; see docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # From drf-spectacular-sidecar's static files, never a CDN (air-gapped farms).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "WikiStateEnum": "farm.models.WikiState",
        "OperationStateEnum": "provisioning.models.OperationState",
        "StepStatusEnum": "provisioning.models.StepStatus",
        "UnarchiveRequestStateEnum": "provisioning.models.UnarchiveRequestState",
        "RunKindEnum": "provisioning.models.RunKind",
        "RunStateEnum": "provisioning.models.RunState",
        "RunItemStateEnum": "provisioning.models.RunItemState",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "farm.api.schema.add_errors_and_strict_bodies",
    ],
}

# --- Metrics (farm/metrics.py, docs/metrics.md) -------------------------------------------
# /metrics wants "Authorization: Bearer <token>"; without a token it is open under DEBUG
# only. A worker serves its own events on FARM_WORKER_METRICS_PORT (0: none); with
# PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) they add up over its pool.
FARM_METRICS_TOKEN = env.str("FARM_METRICS_TOKEN", default="")
FARM_WORKER_METRICS_PORT = env.int("FARM_WORKER_METRICS_PORT", default=0)
# Prometheus scrapes the pod over plain HTTP, as the probes do: no redirect to https.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics$"]

# --- Logs (docs/logging.md) --------------------------------------------------------------
# One JSON object a line in production, the readable line under DEBUG; both carry the
# request id, or the operation, wiki and step in a worker (portal/logs.py).
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT={LOG_FORMAT!r} must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "portal.logs.ContextFilter"}},
    "formatters": {
        "text": {
            "()": "portal.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's default "django" logger has a console handler of its own (on with DEBUG):
    # with the root's, every django.* record was written twice. Its records go to the root.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
