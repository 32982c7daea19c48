"""Settings from the environment: a bad value stops the start with the variable's name and
its rule, before anything runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("url", ["http://x/{id/}", "http://x/wikis/", "ftp://x/{id}/"])
def test_a_wiki_url_without_its_id_is_refused(url):
    result = manage_check(FARM_WIKI_URL=url)
    assert result.returncode != 0
    assert "FARM_WIKI_URL" in result.stderr and "{id}" in result.stderr


def test_a_good_wiki_url_starts():
    assert manage_check(FARM_WIKI_URL="https://{id}.wikis.example.org/").returncode == 0
