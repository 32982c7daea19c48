"""Layout at a desktop's and a phone's width, in Debian's Chromium: nothing an ops person
types or reads (a 255-character site name without spaces, a long refused input) makes a
page wider than the window."""

from __future__ import annotations

import pytest
from django.urls import reverse

from farm import services as registry
from tests.ui.test_browser import chromium  # noqa: F401  (the browser fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WIDTHS = (1280, 390)
LONG_NAME = "W" * 255


def page_fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_long_text_never_widens_a_page(chromium, live_server, wikis, admin_user_a, ops_user, width):  # noqa: F811
    wikis.active(admin_user_a, "longname")
    registry.wiki_update(actor=ops_user, wiki_id="longname", sitename=LONG_NAME)
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": width, "height": 900}
    )
    page = context.new_page()
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto("/login/")
    page.get_by_label("Username").fill("opsuser")
    page.get_by_label("Password").fill("pw-opsuser")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/wikis/")

    for url in (
        reverse("all-wikis"),
        reverse("wiki-detail", args=["longname"]),
        reverse("wiki-config", args=["longname"]),
    ):
        page.goto(url)
        assert LONG_NAME in page.content()
        assert page_fits(page), f"{url} is wider than {width} px"

    page.goto(reverse("wiki-purge", args=["longname"]))
    page.get_by_label("Type the wiki id to confirm").fill("Z" * 3000)
    page.get_by_role("button", name="Purge longname").click()
    assert page.locator("#id_confirm_error").is_visible()
    assert page_fits(page), f"the refused purge is wider than {width} px"
    assert not missing, missing  # the favicon among them
    context.close()
