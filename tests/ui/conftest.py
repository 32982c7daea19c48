"""UI test helpers: browsers-like clients with CSRF checks on, wikis made by the services."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.api.conftest import active_wiki, archived_wiki


def browser(user=None) -> Client:
    """A client that, like a browser, must send the CSRF token with every form."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def submit(client: Client, url: str, data: dict | None = None, **kwargs):
    """POST a form the way a browser does: with the token from the csrftoken cookie."""
    if "csrftoken" not in client.cookies:
        client.get(reverse("wiki-list"), follow=True)  # every page with a form sets it
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token}, **kwargs)


@pytest.fixture
def wikis(farm_drivers):
    """Make wikis in a given state through the services and the engine."""

    class Wikis:
        active = staticmethod(active_wiki)
        archived = staticmethod(archived_wiki)

    return Wikis
