"""Loaded with `-p tests.isolation` (pyproject addopts), before pytest-django reads settings:
the whole session (registry, broker, drivers) lives in a private folder, never in var/."""

import os
import tempfile

os.environ.setdefault("FARM_DATA_DIR", tempfile.mkdtemp(prefix="farm-test-"))
