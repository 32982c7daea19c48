"""Under DEBUG (`bin/dev run`) a 404 is still the portal's own page: Django's technical 404
lists every URL pattern and shows which one matched, which tells another admin that a wiki
id exists."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.ui.conftest import browser

pytestmark = pytest.mark.django_db

TECHNICAL_PAGE = b"Using the URLconf defined in"


@pytest.fixture(autouse=True)
def _debug(settings):
    settings.DEBUG = True


def test_another_admins_wiki_shows_the_portal_404(farm_drivers, admin_user_a, admin_user_b, wikis):
    wikis.active(admin_user_a, "alicewiki")
    response = browser(admin_user_b).get(reverse("wiki-detail", args=["alicewiki"]))
    assert response.status_code == 404
    assert b"<h1>Not found</h1>" in response.content
    assert (
        TECHNICAL_PAGE not in response.content
        and b"wikis/&lt;str:wiki_id&gt;" not in response.content
    )


@pytest.mark.parametrize("url", ["/no/such/page/", "/wikis/nosuchwiki/"])
def test_an_unknown_url_or_object_shows_the_portal_404(ops_user, url):
    response = browser(ops_user).get(url)
    assert response.status_code == 404
    assert b"<h1>Not found</h1>" in response.content
    assert TECHNICAL_PAGE not in response.content and b"Raised by" not in response.content


def test_api_paths_still_answer_json(admin_user_a):
    client = browser(admin_user_a)
    unknown = client.get("/api/v1/no-such-endpoint/")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    hidden = client.get("/api/v1/wikis/nosuchwiki/")
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"


def test_a_missing_trailing_slash_is_still_redirected(admin_user_a):
    response = browser(admin_user_a).get("/wikis")
    assert response.status_code == 301 and response["Location"] == "/wikis/"
