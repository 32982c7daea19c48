"""Loaded with `-p tests.isolation` (pyproject addopts), before pytest-django reads settings:
the whole session (registry, broker, drivers) lives in a private folder, never in var/."""

import os
import tempfile

os.environ.setdefault("FARM_DATA_DIR", tempfile.mkdtemp(prefix="farm-test-"))
# The test client and the live server speak plain HTTP: on a production-like registry
# (DATABASE_URL, as in CI's MariaDB run) the redirect to https would answer every request.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
