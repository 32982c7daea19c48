"""What an ops person notices in the UI: rules said in words, long input not echoed whole,
typed inputs in the configuration editor, a purged wiki shown as gone, a favicon, and a 403
that logs one line."""

from __future__ import annotations

import html
import io
import logging
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import reverse

from farm import config
from farm.errors import InvalidInput
from farm.forms import ui_message
from farm.models import SettingDefinition, Wiki
from farm.validators import WIKI_ID_RULE, check_wiki_id
from provisioning import services
from tests.provisioning.helpers import run_pending
from tests.ui.conftest import browser, submit

pytestmark = pytest.mark.django_db

RAW_RULE = re.compile(r"\^\[|\]\{|\$['\"]?$|\{\d+,\d+\}")  # the look of a regex


def errors_of(page: str) -> str:
    """The text of every error list and alert on a page (not the inputs, which keep what
    was typed)."""
    found = re.findall(
        r'<(?:ul|div) class="(?:errorlist|alert error)[^"]*"[^>]*>(.*?)</(?:ul|div)>',
        page,
        re.DOTALL,
    )
    return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(found)))


def purged_wiki(wikis, owner, ops_user, wiki_id: str) -> Wiki:
    wikis.archived(owner, wiki_id)
    services.wiki_purge(actor=ops_user, wiki_id=wiki_id, confirm=wiki_id)
    run_pending()
    return Wiki.objects.get(pk=wiki_id)


# --- rules in words, input echoed short --------------------------------------------------


def test_a_wiki_id_error_says_the_rule_in_words(farm_drivers, admin_user_a):
    client = browser(admin_user_a)
    form = {"family": "default", "wiki_id": "Bad-Id", "sitename": "S", "language": "en"}
    errors = errors_of(submit(client, reverse("wiki-create"), form).content.decode())
    assert "a lowercase letter, then 1 to 31 lowercase letters or digits" in errors
    assert "^[a-z]" not in errors and not RAW_RULE.search(errors), errors

    live = client.get(reverse("check-wiki-id"), {"id": "Bad-Id"}).json()
    assert "^[a-z]" not in live["message"] and "lowercase letter" in live["message"]
    assert live["rule"] == r"^[a-z][a-z0-9]{1,31}$"  # scripts still get the rule itself


def test_a_long_input_is_not_echoed_whole(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(ops_user)
    typed = "x" * 5000
    refused = submit(client, reverse("wiki-purge", args=["alicewiki"]), {"confirm": typed})
    assert refused.status_code == 400
    errors = errors_of(refused.content.decode())
    assert "does not match" in errors and "x" * 60 + "…" in errors
    assert "x" * 61 not in errors

    live = client.get(reverse("check-wiki-id"), {"id": "Y" * 10_000}).json()
    assert len(live["message"]) < 200 and "Y" * 61 not in live["message"]


def test_the_services_echo_a_long_input_short():
    """What the API and the CLI say too: the rule stays exact, the echo is cut."""
    with pytest.raises(InvalidInput) as refusal:
        check_wiki_id("Y" * 10_000)
    assert refusal.value.message.startswith("wiki id '" + "Y" * 60 + "…' breaks the rule")
    assert len(refusal.value.message) < 300 and refusal.value.rule == WIKI_ID_RULE


def test_a_json_schema_refusal_is_worded_and_short(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(admin_user_a)
    rights = reverse("wiki-config-setting", args=["alicewiki", "wgRightsText"])
    too_long = submit(client, rights, {"value": "z" * 3000, "action": "set"})
    assert too_long.status_code == 400
    errors = errors_of(too_long.content.decode())
    assert "must have at most 255 characters" in errors
    assert "z" * 61 not in errors and "is too long" not in errors

    extensions = reverse("wiki-config-setting", args=["alicewiki", "wgFileExtensions"])
    bad_item = submit(browser(ops_user), extensions, {"value": '["png", "BAD"]', "action": "set"})
    errors = errors_of(bad_item.content.decode())
    assert "Item 2 must be 1 to 10 lowercase letters or digits" in errors
    assert "does not match" not in errors and not RAW_RULE.search(errors), errors


def test_a_service_refusal_is_worded_by_its_rule():
    """What the service refuses (API clients get the rule itself) reads as words."""
    server = SettingDefinition.objects.get(name="wgServer")
    with pytest.raises(InvalidInput) as refusal:
        config.validate_value(server, "ftp://x")
    assert refusal.value.rule.startswith("pattern:")
    assert ui_message(refusal.value, "wgServer") == (
        "wgServer must be http:// or https:// and a host name, without a path."
    )
    assert ui_message(InvalidInput("m", rule="max_length:255"), "Site name") == (
        "Site name must have at most 255 printable characters."
    )


# --- the configuration editor's inputs -----------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "markup"),
    [
        ("wgEnableUploads", 'type="checkbox"'),
        ("wgMaxUploadSize", 'type="number"'),
        ("wgDefaultSkin", "<select"),
        ("wgRightsText", 'type="text"'),
        ("wgFileExtensions", "<textarea"),
        ("wgGroupPermissions", "<textarea"),
    ],
)
def test_each_setting_type_has_its_input(
    farm_drivers, admin_user_a, ops_user, wikis, setting, markup
):
    wikis.active(admin_user_a, "alicewiki")
    page = browser(ops_user).get(reverse("wiki-config-setting", args=["alicewiki", setting]))
    field = re.search(r'<div class="field[^"]*">.*?</div>', page.content.decode(), re.DOTALL)
    assert field and markup in field.group(0), field and field.group(0)


def test_typed_values_are_saved_as_their_json_type(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(ops_user)

    def save(setting, data):
        url = reverse("wiki-config-setting", args=["alicewiki", setting])
        response = submit(client, url, {**data, "action": "set"})
        assert response.status_code == 302, errors_of(response.content.decode())
        entry = config.wiki_effective_config(actor=ops_user, wiki_id="alicewiki")["settings"]
        return next(
            layer["value"] for layer in entry[setting]["layers"] if layer["layer"] == "wiki"
        )

    assert save("wgEnableUploads", {"value": "on"}) is True
    assert save("wgEnableUploads", {}) is False  # an unchecked box sends nothing
    assert save("wgMaxUploadSize", {"value": "1048576"}) == 1048576
    assert save("wgDefaultSkin", {"value": "monobook"}) == "monobook"
    # Plain text is the value, quotes and all: nothing to escape, nothing that fails.
    assert save("wgRightsText", {"value": '"CC BY-SA" 4.0'}) == '"CC BY-SA" 4.0'
    assert save("wgFileExtensions", {"value": '["png", "svg"]'}) == ["png", "svg"]
    assert save("wgGroupPermissions", {"value": '{"user": {"edit": false}}'}) == {
        "user": {"edit": False}
    }


def test_the_checkbox_shows_the_value_in_force(farm_drivers, admin_user_a, ops_user, wikis):
    wikis.active(admin_user_a, "alicewiki")
    client = browser(ops_user)
    url = reverse("wiki-config-setting", args=["alicewiki", "wgEnableUploads"])
    assert "checked" not in re.search(
        r"<input[^>]*checkbox[^>]*>", client.get(url).content.decode()
    ).group(0)
    config.config_set(
        actor=ops_user, layer="default", target="", setting="wgEnableUploads", value=True
    )
    box = re.search(r"<input[^>]*checkbox[^>]*>", client.get(url).content.decode()).group(0)
    assert "checked" in box  # inherited from the farm default, not a blank box


# --- a purged wiki ---------------------------------------------------------------------------


def test_the_purge_receipt_says_yes_and_no(farm_drivers, admin_user_a, ops_user, wikis):
    purged_wiki(wikis, admin_user_a, ops_user, "alicewiki")
    page = browser(ops_user).get(reverse("wiki-detail", args=["alicewiki"])).content.decode()
    receipt = re.search(r'<section class="card receipt".*?</section>', page, re.DOTALL).group(0)
    assert not re.search(r"\b(True|False|None)\b", receipt), receipt
    assert re.search(r"database exists</span> no<", receipt)


def test_a_purged_wiki_has_no_archive_size(farm_drivers, admin_user_a, ops_user, wikis):
    purged_wiki(wikis, admin_user_a, ops_user, "gone")
    wikis.archived(admin_user_a, "kept")
    page = browser(ops_user).get(reverse("all-wikis")).content.decode()
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r'<tr>\s*<td><a href="/wikis/(\w+)/">.*?</tr>', page, re.DOTALL)
    }
    assert re.search(r"\d+(\.\d+)?\xa0(bytes|KB|MB)", rows["kept"])  # an archive has a size
    assert re.search(r"<td><span class=\"muted\">—</span></td>", rows["gone"]), rows["gone"]
    assert not re.search(r"\xa0(bytes|KB|MB)", rows["gone"])


def test_wiki_status_does_not_call_a_purged_wiki_read_only(
    farm_drivers, admin_user_a, ops_user, wikis
):
    purged_wiki(wikis, admin_user_a, ops_user, "alicewiki")
    out = io.StringIO()
    call_command("wiki", "--actor=opsuser", "status", "alicewiki", stdout=out)
    first_line = out.getvalue().splitlines()[0]
    assert first_line.startswith("alicewiki: purged,") and "read-only" not in first_line


# --- favicon and 403s ------------------------------------------------------------------------


def test_every_page_names_a_favicon_that_exists(admin_user_a):
    page = browser(admin_user_a).get(reverse("wiki-list")).content.decode()
    icon = re.search(r'<link rel="icon" href="/static/([^"]+)"', page)
    assert icon and finders.find(icon.group(1)), "no favicon link, or its file is missing"
    old_place = browser().get("/favicon.ico")
    assert old_place.status_code == 301 and old_place["Location"] == "/static/" + icon.group(1)


def forbidden_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "status_code", None) == 403]


def test_a_403_logs_one_line_without_traceback(farm_drivers, admin_user_a, caplog):
    caplog.set_level(logging.INFO)
    assert browser(admin_user_a).get(reverse("all-wikis")).status_code == 403
    (record,) = forbidden_records(caplog)
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert record.getMessage() == "Forbidden: /ops/wikis/"


def test_a_403_is_written_once_even_with_debug(settings, admin_user_a):
    """With DEBUG (bin/dev run), Django's own console handler wrote every record a second
    time next to the root's."""
    settings.DEBUG = True
    written = []
    logger = logging.getLogger("django.request")
    handlers = []
    while logger:
        handlers += logger.handlers
        logger = logger.parent if logger.propagate else None
    originals = {handler: handler.emit for handler in handlers}
    for handler in handlers:
        handler.emit = lambda record, handler=handler: written.append((handler, record))
    try:
        browser(admin_user_a).get(reverse("all-wikis"))
    finally:
        for handler, emit in originals.items():
            handler.emit = emit
    forbidden = [
        (handler, record)
        for handler, record in written
        if getattr(record, "status_code", None) == 403
        and not type(handler).__module__.startswith("_pytest")  # caplog's own
    ]
    assert len(forbidden) == 1, forbidden
