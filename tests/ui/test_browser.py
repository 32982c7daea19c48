"""The whole lifecycle from the browser: Debian's Chromium driven by Playwright, against the
portal in pytest-django's live server, with a real Celery worker carrying out the operations.

A wiki admin creates a wiki and watches it become active (the page follows the steps by
itself), archives it and requests unarchive; ops approve, then purge it with the typed id
and read the receipt; another wiki admin neither sees nor acts on the wiki. A screenshot of
each main page goes to test-artifacts/.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from farm.models import Wiki, WikiState
from provisioning.drivers import reset_drivers
from tests.provisioning.test_worker import Worker
from tests.services import service_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    pytest.mark.timeout(240),
    # The live server and the worker use their own connections: data must be committed.
    # Migrations seed rows (families, the settings catalog) that later tests need back.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
OPERATION_TIMEOUT_MS = 45_000


@pytest.fixture
def chromium(monkeypatch):
    if not Path(CHROMIUM).exists():
        service_unavailable("Debian's chromium is not installed (run .ci/install-ui.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_unavailable("Playwright for Python is not installed (requirements-test.txt)")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # between browser steps are ordinary synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def worker(transactional_db, tmp_path):
    reset_drivers()  # the session's default drivers, which the worker builds too
    process = Worker("uiworker", tmp_path, {})
    yield process
    process.stop()
    sys.stdout.write(f"\n----- worker log -----\n{process.log()}\n")  # shown on failure
    reset_drivers()


class Person:
    """One browser context (its own cookies) signed in as one user."""

    def __init__(self, browser, base_url: str, username: str):
        self.base_url = base_url
        self.username = username
        self.context = browser.new_context(
            base_url=base_url, viewport={"width": 1280, "height": 900}
        )
        self.page = self.context.new_page()

    def sign_in(self, screenshot: str | None = None):
        self.page.goto("/login/")
        if screenshot:
            shoot(self.page, screenshot)
        self.page.get_by_label("Username").fill(self.username)
        self.page.get_by_label("Password").fill(f"pw-{self.username}")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/wikis/")

    def wait_for_state(self, state: str):
        from playwright.sync_api import expect

        expect(self.page.locator("[data-wiki-state]")).to_have_text(
            state, timeout=OPERATION_TIMEOUT_MS
        )


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_wiki_lifecycle_in_the_browser(
    chromium, worker, live_server, admin_user_a, admin_user_b, ops_user
):
    from playwright.sync_api import expect

    wiki_id = f"ui{uuid.uuid4().hex[:10]}"  # drivers' folders are shared by the session
    alice = Person(chromium, live_server.url, "alice")
    alice.sign_in(screenshot="01-login")
    page = alice.page

    # Create, with the id checked while it is typed.
    page.get_by_role("link", name="Create a wiki").first.click()
    page.get_by_label("Wiki id").fill("Bad-Id")
    expect(page.locator("#wiki-id-status")).to_contain_text("must be a lowercase letter")
    page.get_by_label("Wiki id").fill(wiki_id)
    expect(page.locator("#wiki-id-status")).to_contain_text(f"{wiki_id} is free")
    page.get_by_label("Site name").fill("Browser wiki")
    shoot(page, "02-create")
    page.get_by_role("button", name="Create wiki").click()
    page.wait_for_url(f"**/wikis/{wiki_id}/")
    wiki_page = page.url
    expect(page.locator("[data-step=create_database]")).to_be_visible()
    shoot(page, "03-create-progress")
    alice.wait_for_state("active")  # without a reload: the page follows the operation
    assert page.url == wiki_page
    shoot(page, "04-wiki-active")
    page.get_by_role("link", name="Configuration").click()
    expect(page.get_by_role("row", name="wgSitename")).to_contain_text("Browser wiki")
    shoot(page, "04b-config")

    page.get_by_role("link", name="My wikis").click()
    expect(page.get_by_role("link", name=wiki_id)).to_be_visible()
    shoot(page, "05-my-wikis")

    # Archive, after a confirmation that says what happens.
    page.goto(wiki_page)
    page.get_by_role("link", name="Archive…").click()
    expect(page.get_by_text("drop the live database")).to_be_visible()
    shoot(page, "06-archive-confirm")
    page.get_by_role("button", name=f"Archive {wiki_id}").click()
    alice.wait_for_state("archived")

    # Request unarchive, with a reason.
    page.get_by_role("link", name="Request unarchive…").click()
    page.get_by_label("Reason").fill("The project starts again")
    page.get_by_role("button", name="Request unarchive").click()
    expect(page.get_by_text("The project starts again")).to_be_visible()
    shoot(page, "07-unarchive-requested")

    # Another wiki admin neither sees it nor acts on it.
    bob = Person(chromium, live_server.url, "bob")
    bob.sign_in()
    expect(bob.page.get_by_role("link", name=wiki_id)).to_have_count(0)
    assert bob.page.goto(f"/wikis/{wiki_id}/").status == 404
    assert bob.page.goto(f"/wikis/{wiki_id}/unarchive/").status == 404
    bob.page.goto("/wikis/")
    token = next(c["value"] for c in bob.context.cookies() if c["name"] == "csrftoken")
    forged = bob.page.request.post(
        f"/wikis/{wiki_id}/archive/",
        form={"csrfmiddlewaretoken": token},
        headers={"Referer": live_server.url + "/wikis/"},
    )
    assert forged.status == 404
    assert bob.page.goto("/ops/unarchive-requests/").status == 403

    # Ops approve the request and watch the wiki come back.
    ops = Person(chromium, live_server.url, "opsuser")
    ops.sign_in()
    ops.page.get_by_role("link", name="Unarchive queue").click()
    expect(ops.page.get_by_text("The project starts again")).to_be_visible()
    shoot(ops.page, "08-unarchive-queue")
    row = ops.page.locator("tr", has_text=wiki_id)
    row.get_by_label("Note").first.fill("approved in the browser test")
    row.get_by_role("button", name="Approve").click()
    ops.page.wait_for_url(f"**/wikis/{wiki_id}/")
    ops.wait_for_state("active")

    # Purge: the page says what goes; a wrong id is refused beside the field.
    ops.page.get_by_role("link", name="Purge…").click()
    expect(ops.page.get_by_text("This cannot be undone.")).to_be_visible()
    shoot(ops.page, "09-purge")
    ops.page.get_by_label("Type the wiki id to confirm").fill("not-the-id")
    ops.page.get_by_role("button", name=f"Purge {wiki_id}").click()
    expect(ops.page.locator("#id_confirm_error")).to_contain_text("does not match")
    ops.page.get_by_label("Type the wiki id to confirm").fill(wiki_id)
    ops.page.get_by_role("button", name=f"Purge {wiki_id}").click()
    ops.wait_for_state("purged")
    expect(ops.page.locator("#purge-receipt")).to_contain_text("Purge receipt")
    shoot(ops.page, "10-purge-receipt")

    ops.page.get_by_role("link", name="All wikis").click()
    expect(ops.page.get_by_role("link", name=wiki_id)).to_be_visible()
    shoot(ops.page, "11-all-wikis")
    ops.page.goto(f"/ops/audit/?wiki={wiki_id}")
    expect(ops.page.get_by_text("operation.unarchive.succeeded")).to_be_visible()
    shoot(ops.page, "12-audit-log")

    assert Wiki.objects.get(pk=wiki_id).state == WikiState.PURGED
    assert os.path.exists(ARTIFACTS / "10-purge-receipt.png")
