"""The API docs work in an air-gapped farm: ReDoc and Swagger UI come from the portal's own
static files (drf-spectacular-sidecar). Debian's Chromium loads them with every request to
anything but the live server refused, and must not even try one."""

from __future__ import annotations

import pytest
import yaml

from tests.ui.test_browser import CHROMIUM_FLAGS, chromium  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def operations_in_schema(client) -> list[tuple[str, str]]:
    """(method, path) of every operation the portal's schema documents."""
    paths = yaml.safe_load(client.get("/api/v1/schema/").content)["paths"]
    return [
        (method, path)
        for path, item in paths.items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture
def offline_page(chromium, live_server, auditor_user, client):  # noqa: F811
    """A signed-in page whose every request outside the live server is aborted."""
    client.force_login(auditor_user)
    context = chromium.new_context(base_url=live_server.url)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    outside: list[str] = []

    def only_the_portal(route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_portal)
    page = context.new_page()
    yield page, outside, operations_in_schema(client)
    context.close()


def test_redoc_renders_the_operations_list_offline(offline_page):
    from playwright.sync_api import expect

    page, outside, operations = offline_page
    page.goto("/api/v1/docs/")
    # ReDoc's side menu: a group per tag, each operation in it (collapsed until clicked).
    expect(page.get_by_role("menuitem", name="operations").first).to_be_visible(timeout=90_000)
    menu = page.locator("[role=menuitem] .operation-type")
    assert menu.count() == len(operations)
    expect(page.get_by_text("/api/v1/operations/{id}/").first).to_be_attached()
    assert outside == []


def test_swagger_ui_renders_the_operations_list_offline(offline_page):
    from playwright.sync_api import expect

    page, outside, operations = offline_page
    page.goto("/api/v1/docs/swagger/")
    blocks = page.locator(".opblock")
    expect(blocks.first).to_be_visible(timeout=90_000)
    assert blocks.count() == len(operations)
    path = page.locator(".opblock-summary-path", has_text="/api/v1/operations/")
    expect(path.first).to_be_visible()
    assert outside == []
