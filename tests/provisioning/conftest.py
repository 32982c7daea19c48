"""Fixtures of the provisioning tests: real worker processes (tests/provisioning/workers.py)."""

from tests.provisioning.workers import start_worker  # noqa: F401 (a fixture)
