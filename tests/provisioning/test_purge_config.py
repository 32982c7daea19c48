"""Purge removes the wiki's own configuration block, keeps its last values in the receipt,
and verifies that no row is left."""

import pytest
from rest_framework.test import APIClient

from farm import config
from farm.models import ConfigValue, Wiki
from provisioning import services
from provisioning.models import OperationKind, OperationState
from provisioning.steps import STEP_FUNCTIONS
from tests.provisioning.helpers import run_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(farm_drivers, ops_user):
    services.wiki_create(actor=ops_user, wiki_id="alpha", family="default", sitename="A")
    run_pending()
    config.config_set(actor=ops_user, layer="wiki", target="alpha", setting="wgRawHtml", value=True)
    config.config_set(
        actor=ops_user, layer="wiki", target="alpha", setting="wgRightsText", value="CC0"
    )
    config.config_set(actor=ops_user, layer="default", setting="wgRightsText", value="Farm")
    return ops_user


def test_purge_removes_the_config_block_and_keeps_it_in_the_receipt(configured):
    services.wiki_purge(actor=configured, wiki_id="alpha", confirm="alpha")
    run_pending()
    wiki = Wiki.objects.get(pk="alpha")
    assert not ConfigValue.objects.filter(layer="wiki", target="alpha").exists()
    assert wiki.purge_receipt["removed"]["config"] == {"wgRawHtml": True, "wgRightsText": "CC0"}
    assert wiki.purge_receipt["verification"]["config_values"] == 0
    # The farm default is not the wiki's: it stays.
    assert ConfigValue.objects.filter(layer="default", setting__name="wgRightsText").exists()
    client = APIClient()
    client.force_authenticate(configured)
    block = client.get("/api/v1/config/blocks/wiki/alpha/")
    assert block.status_code == 200, block.content
    assert "wgRawHtml" not in block.json()["values"], block.json()
    assert "wgRightsText" not in block.json()["values"], block.json()


def test_verify_purged_refuses_a_config_row_left_behind(configured, monkeypatch):
    monkeypatch.setitem(
        STEP_FUNCTIONS[OperationKind.PURGE], "remove_config", lambda ctx: {"values": {}}
    )
    operation = services.wiki_purge(actor=configured, wiki_id="alpha", confirm="alpha")
    run_pending()
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.failed_step == "verify_purged"
    assert "configuration values remain" in operation.error
