"""Configuration in layers: catalog, resolution with merge and provenance, validation,
history, diff, rollback and who may change what."""

import jsonschema
import pytest

from farm import config
from farm.errors import InvalidInput, NotAllowed, NotFound
from farm.models import AuditEvent, ConfigValue, ConfigVersion, SettingDefinition, Wiki
from farm.services import family_create, tag_create
from provisioning import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def layered(ops_user, admin_user_a):
    """Two wikis of family `docs`: `alpha` tagged private (10) and beta (5), `gamma` none."""
    family_create(actor=ops_user, name="docs")
    tag_create(actor=ops_user, name="private", priority=10)
    tag_create(actor=ops_user, name="beta", priority=5)
    services.wiki_create(
        actor=admin_user_a,
        wiki_id="alpha",
        family="docs",
        sitename="Alpha",
        tags=["beta", "private"],
    )
    services.wiki_create(actor=admin_user_a, wiki_id="gamma", family="docs", sitename="Gamma")
    return ops_user


def effective(actor, wiki_id):
    return config.wiki_effective_config(actor=actor, wiki_id=wiki_id)["settings"]


def test_catalog_is_seeded_with_valid_schemas_and_defaults():
    definitions = list(SettingDefinition.objects.all())
    names = {d.name for d in definitions}
    assert len(definitions) >= 30
    assert {"wgSitename", "wgLogos", "wgGroupPermissions", "wgReadOnly", "wgServer"} <= names
    for definition in definitions:
        jsonschema.Draft202012Validator.check_schema(definition.schema)
        assert definition.schema["type"] == definition.type
        if definition.default is not None:
            config.validate_value(definition, definition.default)
        if definition.merge_strategy == "merge":
            assert definition.type in ("array", "object")


def test_resolution_wiki_then_tags_by_priority_then_family_then_default(layered):
    ops = layered
    set_ = config.config_set
    set_(actor=ops, layer="default", setting="wgRightsText", value="CC0")
    assert effective(ops, "alpha")["wgRightsText"]["value"] == "CC0"
    set_(actor=ops, layer="family", target="docs", setting="wgRightsText", value="CC BY")
    assert effective(ops, "alpha")["wgRightsText"]["value"] == "CC BY"
    set_(actor=ops, layer="tag", target="beta", setting="wgRightsText", value="beta text")
    assert effective(ops, "alpha")["wgRightsText"]["value"] == "beta text"
    set_(actor=ops, layer="tag", target="private", setting="wgRightsText", value="private")
    # private has the higher priority, whichever order the tags were given in
    assert effective(ops, "alpha")["wgRightsText"] == {
        "value": "private",
        "layer": "tag",
        "target": "private",
        "layers": [
            {"layer": "default", "target": "", "value": "CC0"},
            {"layer": "family", "target": "docs", "value": "CC BY"},
            {"layer": "tag", "target": "beta", "value": "beta text"},
            {"layer": "tag", "target": "private", "value": "private"},
        ],
        "default": None,
        "merge_strategy": "replace",
        "editable_by": "wiki-admin",
    }
    set_(actor=ops, layer="wiki", target="alpha", setting="wgRightsText", value="own")
    assert effective(ops, "alpha")["wgRightsText"]["layer"] == "wiki"
    assert effective(ops, "alpha")["wgRightsText"]["value"] == "own"
    # gamma has no tags: the family gives its value
    assert effective(ops, "gamma")["wgRightsText"]["value"] == "CC BY"
    # nothing set anywhere: the catalog default, or no value at all
    assert effective(ops, "gamma")["wgDefaultSkin"]["layer"] == "catalog"
    assert effective(ops, "gamma")["wgRightsUrl"] == {
        "value": None,
        "layers": [],
        "default": None,
        "merge_strategy": "replace",
        "editable_by": "wiki-admin",
    }


def test_merge_combines_maps_and_arrays_down_the_chain(layered):
    ops = layered
    config.config_set(
        actor=ops,
        layer="default",
        setting="wgGroupPermissions",
        value={"*": {"edit": False}, "user": {"edit": True}},
    )
    config.config_set(
        actor=ops,
        layer="tag",
        target="private",
        setting="wgGroupPermissions",
        value={"*": {"read": False}},
    )
    config.config_set(
        actor=ops,
        layer="wiki",
        target="alpha",
        setting="wgGroupPermissions",
        value={"*": {"edit": True}},
    )
    config.config_set(
        actor=ops, layer="family", target="docs", setting="wgFileExtensions", value=["pdf", "png"]
    )
    settings_alpha = effective(ops, "alpha")
    assert settings_alpha["wgGroupPermissions"]["value"] == {
        "*": {"edit": True, "read": False},
        "user": {"edit": True},
    }
    assert settings_alpha["wgGroupPermissions"]["merged_from"] == [
        {"layer": "default", "target": ""},
        {"layer": "tag", "target": "private"},
        {"layer": "wiki", "target": "alpha"},
    ]
    assert settings_alpha["wgFileExtensions"]["value"] == [
        "png",
        "gif",
        "jpg",
        "jpeg",
        "webp",
        "pdf",
    ]
    assert settings_alpha["wgFileExtensions"]["merged_from"][0] == {
        "layer": "catalog",
        "target": "",
    }
    assert effective(ops, "gamma")["wgGroupPermissions"]["value"] == {
        "*": {"edit": False},
        "user": {"edit": True},
    }


def test_export_resolution_matches_the_per_wiki_view(layered):
    ops = layered
    config.config_set(
        actor=ops, layer="tag", target="beta", setting="wgLogos", value={"1x": "/beta.png"}
    )
    config.config_set(
        actor=ops, layer="wiki", target="alpha", setting="wgLogos", value={"icon": "/a.svg"}
    )
    rows = [(w.pk, w.family.name, w.sitename, w.language) for w in Wiki.objects.all()]
    tags = {"alpha": ["private", "beta"]}
    bulk = config.effective_settings_for_wikis(rows, tags)
    for wiki_id in ("alpha", "gamma"):
        single = {
            name: entry["value"]
            for name, entry in effective(ops, wiki_id).items()
            if entry["value"] is not None
        }
        assert bulk[wiki_id] == single
    assert bulk["alpha"]["wgLogos"] == {"1x": "/beta.png", "icon": "/a.svg"}


def test_a_value_the_schema_refuses_names_setting_and_rule_and_changes_nothing(layered):
    ops = layered
    before = (
        ConfigValue.objects.count(),
        ConfigVersion.objects.count(),
        AuditEvent.objects.count(),
    )
    cases = [
        ("wgDefaultSkin", "nonesuch", "enum"),
        ("wgEnableUploads", "yes", "type"),
        ("wgMaxArticleSize", 0, "minimum"),
        ("wgGroupPermissions", {"*": {"edit": "no"}}, "type"),
        ("wgFileExtensions", ["php", "PHP!"], "pattern"),
        ("wgRightsText", None, "not_null"),
    ]
    for setting, value, rule in cases:
        with pytest.raises(InvalidInput) as raised:
            config.config_set(actor=ops, layer="wiki", target="alpha", setting=setting, value=value)
        assert raised.value.field == setting
        assert raised.value.rule.startswith(rule), raised.value.rule
        assert setting in raised.value.message
    with pytest.raises(InvalidInput) as raised:
        config.config_set(actor=ops, layer="wiki", target="alpha", setting="wgSitename", value="")
    assert raised.value.rule == "minLength:1"
    after = (ConfigValue.objects.count(), ConfigVersion.objects.count(), AuditEvent.objects.count())
    assert after == before
    assert Wiki.objects.get(pk="alpha").sitename == "Alpha"


def test_history_records_who_when_before_after(layered, admin_user_a):
    ops = layered
    first = config.config_set(actor=ops, layer="default", setting="wgRightsText", value="A")
    second = config.config_set(actor=ops, layer="default", setting="wgRightsText", value="B")
    assert config.config_set(actor=ops, layer="default", setting="wgRightsText", value="B") is None
    third = config.config_unset(actor=ops, layer="default", setting="wgRightsText")
    history = list(config.history_for(ops, layer="default"))
    assert [v.version for v in history] == [third.pk, second.pk, first.pk]
    assert [(v.before, v.after) for v in history] == [("B", None), ("A", "B"), (None, "A")]
    assert {v.actor_name for v in history} == {"opsuser"}
    assert all(v.created_at for v in history)
    events = AuditEvent.objects.filter(action__startswith="config.").values_list(
        "action", flat=True
    )
    assert sorted(events) == ["config.set", "config.set", "config.unset"]
    with pytest.raises(ValueError, match="append-only"):
        history[0].save()


def test_diff_between_two_versions(layered):
    ops = layered
    v1 = config.config_set(
        actor=ops, layer="family", target="docs", setting="wgRightsText", value="A"
    )
    v2 = config.config_set(
        actor=ops, layer="family", target="docs", setting="wgEnableUploads", value=True
    )
    v3 = config.config_set(
        actor=ops, layer="family", target="docs", setting="wgRightsText", value="B"
    )
    diff = config.config_diff(
        actor=ops, layer="family", target="docs", from_version=v1.pk, to_version=v3.pk
    )
    assert diff["changes"] == {
        "wgEnableUploads": {"from": None, "to": True},
        "wgRightsText": {"from": "A", "to": "B"},
    }
    empty = config.config_diff(
        actor=ops, layer="family", target="docs", from_version=v2.pk, to_version=v2.pk
    )
    assert empty["changes"] == {}
    other = config.config_set(actor=ops, layer="default", setting="wgRightsText", value="x")
    with pytest.raises(NotFound):
        config.config_diff(
            actor=ops, layer="family", target="docs", from_version=other.pk, to_version=v3.pk
        )


def test_rollback_is_a_new_version(layered):
    ops = layered
    v1 = config.config_set(
        actor=ops, layer="wiki", target="alpha", setting="wgRightsText", value="A"
    )
    config.config_set(actor=ops, layer="wiki", target="alpha", setting="wgRightsText", value="B")
    config.config_set(actor=ops, layer="wiki", target="alpha", setting="wgSitename", value="New")
    config.config_set(
        actor=ops, layer="wiki", target="alpha", setting="wgNoFollowLinks", value=False
    )
    versions = config.config_rollback(actor=ops, layer="wiki", target="alpha", version=v1.pk)
    assert {v.setting for v in versions} == {"wgRightsText", "wgNoFollowLinks"}
    assert all(v.pk > v1.pk and v.rollback_to == v1.pk for v in versions)
    values = effective(ops, "alpha")
    assert values["wgRightsText"]["value"] == "A"
    assert values["wgNoFollowLinks"]["value"] is None
    # The sitename had no history before v1: the rollback leaves the registry field alone.
    assert Wiki.objects.get(pk="alpha").sitename == "New"
    assert config.config_rollback(actor=ops, layer="wiki", target="alpha", version=v1.pk) == []
    assert AuditEvent.objects.filter(action="config.rollback").count() == 2


def test_sitename_and_language_are_the_registry_fields(layered, admin_user_a):
    config.config_set(
        actor=admin_user_a, layer="wiki", target="alpha", setting="wgSitename", value="Renamed"
    )
    assert Wiki.objects.get(pk="alpha").sitename == "Renamed"
    assert effective(admin_user_a, "alpha")["wgSitename"]["value"] == "Renamed"
    assert not ConfigValue.objects.filter(setting__name="wgSitename").exists()
    with pytest.raises(InvalidInput) as raised:
        config.config_unset(actor=admin_user_a, layer="wiki", target="alpha", setting="wgSitename")
    assert raised.value.rule == "required"
    config.config_set(
        actor=admin_user_a, layer="wiki", target="alpha", setting="wgLanguageCode", value="de"
    )
    assert Wiki.objects.get(pk="alpha").language == "de"


def test_permissions(layered, admin_user_a, admin_user_b, auditor_user):
    ops = layered
    set_ = config.config_set
    # a wiki admin: wiki-editable settings of their own wikis only
    assert set_(
        actor=admin_user_a, layer="wiki", target="alpha", setting="wgRightsText", value="mine"
    )
    with pytest.raises(NotAllowed) as raised:
        set_(actor=admin_user_a, layer="wiki", target="alpha", setting="wgRawHtml", value=True)
    assert raised.value.rule == "ops_only"
    with pytest.raises(NotAllowed):
        set_(actor=admin_user_a, layer="family", target="docs", setting="wgRightsText", value="x")
    with pytest.raises(NotAllowed):
        set_(actor=admin_user_a, layer="default", setting="wgRightsText", value="x")
    # another wiki admin does not even see alpha
    with pytest.raises(NotFound):
        set_(actor=admin_user_b, layer="wiki", target="alpha", setting="wgRightsText", value="x")
    with pytest.raises(NotFound):
        config.wiki_effective_config(actor=admin_user_b, wiki_id="alpha")
    assert not config.history_for(admin_user_b, layer="wiki").exists()
    # an auditor reads everything and changes nothing
    assert effective(auditor_user, "alpha")["wgRightsText"]["value"] == "mine"
    assert config.history_for(auditor_user).count() == 1
    with pytest.raises(NotAllowed):
        set_(actor=auditor_user, layer="wiki", target="alpha", setting="wgRightsText", value="x")
    with pytest.raises(NotAllowed):
        config.config_unset(
            actor=auditor_user, layer="wiki", target="alpha", setting="wgRightsText"
        )
    # ops: everything; and a rollback a wiki admin may not do changes nothing
    set_(actor=ops, layer="wiki", target="alpha", setting="wgRawHtml", value=True)
    latest = ConfigVersion.objects.filter(layer="wiki", target="alpha").first()
    with pytest.raises(NotAllowed):
        config.config_rollback(
            actor=admin_user_a, layer="wiki", target="alpha", version=latest.pk - 1
        )
    assert effective(ops, "alpha")["wgRawHtml"]["value"] is True


def test_unknown_blocks_and_settings(layered):
    ops = layered
    with pytest.raises(NotFound):
        config.config_set(actor=ops, layer="wiki", target="alpha", setting="wgNope", value=1)
    with pytest.raises(NotFound):
        config.config_set(actor=ops, layer="tag", target="nope", setting="wgRawHtml", value=True)
    with pytest.raises(InvalidInput) as raised:
        config.config_set(actor=ops, layer="site", target="x", setting="wgRawHtml", value=True)
    assert raised.value.field == "layer"
    with pytest.raises(InvalidInput):
        config.config_set(actor=ops, layer="default", target="x", setting="wgRawHtml", value=True)


def test_ops_add_settings_to_the_catalog(layered, admin_user_a):
    ops = layered
    definition = config.setting_create(
        actor=ops,
        name="wgCookieExpiration",
        type="integer",
        schema={"minimum": 60},
        default=2592000,
        description="Seconds a login cookie lasts.",
    )
    assert definition.schema == {"type": "integer", "minimum": 60}
    assert effective(ops, "alpha")["wgCookieExpiration"]["value"] == 2592000
    refusals = [
        ({"name": "wgDBpassword"}, "not_protected"),
        ({"name": "no-wg"}, config.SETTING_NAME_RE.pattern),
        ({"name": "wgCookieExpiration"}, "unique"),
        ({"schema": {"type": "string"}}, "type_matches"),
        ({"schema": {"minimum": "sixty"}}, "json_schema_2020_12"),
        ({"default": 1}, "minimum:60"),
        ({"merge_strategy": "merge"}, "merge_needs_array_or_object"),
    ]
    for change, rule in refusals:
        arguments = {"name": "wgOther", "type": "integer", "schema": {"minimum": 60}, **change}
        with pytest.raises(InvalidInput) as raised:
            config.setting_create(actor=ops, **arguments)
        assert raised.value.rule == rule
    with pytest.raises(NotAllowed):
        config.setting_create(actor=admin_user_a, name="wgOther", type="boolean", schema={})


def test_effective_config_of_one_wiki_takes_few_queries(layered, django_assert_max_num_queries):
    ops = layered
    config.config_set(actor=ops, layer="tag", target="beta", setting="wgRightsText", value="b")
    ops = type(ops).objects.get(pk=ops.pk)  # no cached roles
    with django_assert_max_num_queries(6):
        config.wiki_effective_config(actor=ops, wiki_id="alpha")


def test_rollback_that_changes_nothing_is_still_refused_to_non_editors(admin_user_a, auditor_user):
    with pytest.raises(NotAllowed, match="only ops may change the default layer"):
        config.config_rollback(actor=admin_user_a, layer="default", version=1)
    with pytest.raises(NotAllowed, match="only ops may change the default layer"):
        config.config_rollback(actor=auditor_user, layer="default", version=1)


def test_a_setting_schema_with_an_unknown_keyword_is_refused(ops_user):
    from farm.errors import InvalidInput

    with pytest.raises(InvalidInput) as error:
        config.setting_create(
            actor=ops_user, name="wgFarmTypo", type="string", schema={"maxLenght": 5}
        )
    assert error.value.field == "schema" and error.value.rule == "known_keywords"
    assert "maxLenght" in error.value.message
