"""The settings catalog: what a setting is (type, JSON Schema, default, merge strategy,
who may edit it), the seeded catalog, validation of values, and adding a setting."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction

from farm.audit import audit
from farm.errors import InvalidInput, NotAllowed
from farm.models import (
    EditableBy,
    MergeStrategy,
    SettingDefinition,
    SettingType,
)
from farm.roles import is_ops
from farm.validators import LANGUAGE_RE, check_text, shorten

SETTING_NAME_RE = re.compile(r"^wg[A-Z][A-Za-z0-9_]{0,61}$", re.ASCII)
# What the MediaWiki include sets itself, or what holds secrets and connections: a
# setting with such a name would let a config block take over another wiki's database.
PROTECTED_SETTING_PREFIXES = (
    "wgDB",
    "wgSharedDB",
    "wgSecretKey",
    "wgUpgradeKey",
    "wgSessionSecret",
    "wgAuthenticationTokenVersion",
    "wgLBFactoryConf",
    "wgExternalServers",
    "wgLocalDatabases",
    "wgConf",
    "wgSettings",
)
MAX_VALUE_BYTES = 64 * 1024
# Registry fields that are the wiki layer's value of a setting.
REGISTRY_SETTINGS = {"wgSitename": "sitename", "wgLanguageCode": "language"}
CATALOG_LAYER = "catalog"

# --- the seeded catalog --------------------------------------------------------------------

_PERMISSIONS_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": r"^[A-Za-z*][A-Za-z0-9_-]{0,63}$"},
    "additionalProperties": {
        "type": "object",
        "propertyNames": {"pattern": r"^[a-z][a-z0-9_-]{0,63}$"},
        "additionalProperties": {"type": "boolean"},
    },
}
_URL = r"^https?://[^\s\"'<>]+$"
_EMAIL = r"^[^@\s\"'<>]+@[^@\s\"'<>]+$"


def _setting(
    name: str,
    type_: str,
    schema: dict,
    *,
    default: Any = None,
    merge: bool = False,
    wiki_admin: bool = False,
    description: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "schema": {"type": type_, **schema},
        "default": default,
        "merge_strategy": MergeStrategy.MERGE if merge else MergeStrategy.REPLACE,
        "editable_by": EditableBy.WIKI_ADMIN if wiki_admin else EditableBy.OPS,
        "description": description,
    }


# Seeded by migration 0006. A default of None leaves MediaWiki's own default in force.
SEEDED_SETTINGS: list[dict[str, Any]] = [
    _setting("wgSitename", "string", {"minLength": 1, "maxLength": 255}, wiki_admin=True,
             description="Name of the wiki (the registry's sitename)."),
    _setting("wgLanguageCode", "string", {"pattern": LANGUAGE_RE.pattern}, default="en",
             wiki_admin=True, description="Content language (the registry's language)."),
    _setting("wgDefaultSkin", "string",
             {"enum": ["vector", "vector-2022", "monobook", "timeless", "minerva"]},
             default="vector", wiki_admin=True, description="Skin for anonymous readers."),
    _setting("wgLogos", "object",
             {"propertyNames": {"enum": ["1x", "1.5x", "2x", "svg", "icon", "wordmark",
                                         "tagline"]},
              "maxProperties": 7},
             merge=True, wiki_admin=True, description="Logo variants (paths or URLs)."),
    _setting("wgFavicon", "string", {"maxLength": 500}, wiki_admin=True,
             description="Path or URL of the favicon."),
    _setting("wgEnableUploads", "boolean", {}, default=False,
             description="Allow file uploads (needs the wiki's storage namespace)."),
    _setting("wgFileExtensions", "array",
             {"items": {"type": "string", "pattern": r"^[a-z0-9]{1,10}$"}, "uniqueItems": True,
              "maxItems": 100},
             default=["png", "gif", "jpg", "jpeg", "webp"], merge=True,
             description="File extensions uploads may have."),
    _setting("wgMaxUploadSize", "integer", {"minimum": 0, "maximum": 4 * 1024**3},
             description="Largest upload in bytes."),
    _setting("wgGroupPermissions", "object", _PERMISSIONS_SCHEMA, merge=True,
             description="Rights per user group, merged onto MediaWiki's defaults."),
    _setting("wgRevokePermissions", "object", _PERMISSIONS_SCHEMA, merge=True,
             description="Rights taken from user groups."),
    _setting("wgReadOnly", "string", {"minLength": 1, "maxLength": 500},
             description="Put the wiki in read-only mode with this message."),
    _setting("wgServer", "string", {"pattern": r"^https?://[^/\s\"'<>]+$"},
             description="Protocol and host of the wiki's URLs."),
    _setting("wgArticlePath", "string", {"pattern": r"^/[^\s\"'<>]*\$1[^\s\"'<>]*$"},
             description="URL path of an article, with $1 for its title."),
    _setting("wgRightsText", "string", {"maxLength": 255}, wiki_admin=True,
             description="Licence of the content, as shown in the footer."),
    _setting("wgRightsUrl", "string", {"pattern": _URL}, wiki_admin=True,
             description="URL of the licence."),
    _setting("wgRightsIcon", "string", {"maxLength": 500}, wiki_admin=True,
             description="Icon of the licence."),
    _setting("wgMetaNamespace", "string", {"pattern": r"^[A-Za-z][A-Za-z0-9_]{0,63}$"},
             wiki_admin=True, description="Name of the project namespace."),
    _setting("wgLocaltimezone", "string", {"pattern": r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$"},
             wiki_admin=True, description="Time zone of the wiki."),
    _setting("wgEnableEmail", "boolean", {}, description="Send e-mail at all."),
    _setting("wgEnableUserEmail", "boolean", {}, wiki_admin=True,
             description="Let users e-mail each other."),
    _setting("wgEmergencyContact", "string", {"pattern": _EMAIL},
             description="Address for emergencies."),
    _setting("wgPasswordSender", "string", {"pattern": _EMAIL},
             description="Sender of password reset e-mails."),
    _setting("wgAllowExternalImages", "boolean", {}, wiki_admin=True,
             description="Show images linked from other sites inline."),
    _setting("wgRawHtml", "boolean", {}, default=False,
             description="Allow raw HTML in wikitext (dangerous on open wikis)."),
    _setting("wgNamespacesWithSubpages", "object",
             {"propertyNames": {"pattern": r"^-?[0-9]{1,6}$"},
              "additionalProperties": {"type": "boolean"}},
             merge=True, wiki_admin=True, description="Namespaces where subpages are on."),
    _setting("wgExtraNamespaces", "object",
             {"propertyNames": {"pattern": r"^[1-9][0-9]{2,5}$"},
              "additionalProperties": {"type": "string",
                                       "pattern": r"^[A-Za-z][A-Za-z0-9_]{0,63}$"}},
             merge=True, description="Custom namespaces (ids of 100 and above)."),
    _setting("wgUseInstantCommons", "boolean", {},
             description="Use files from Wikimedia Commons."),
    _setting("wgCapitalLinks", "boolean", {},
             description="Capitalise the first letter of titles (change before content)."),
    _setting("wgDefaultRobotPolicy", "string",
             {"enum": ["index,follow", "noindex,nofollow", "noindex,follow", "index,nofollow"]},
             wiki_admin=True, description="Robot policy of pages."),
    _setting("wgNoFollowLinks", "boolean", {}, wiki_admin=True,
             description="Add rel=nofollow to external links."),
    _setting("wgRCMaxAge", "integer", {"minimum": 3600, "maximum": 10 * 365 * 86400},
             description="Seconds recent changes are kept."),
    _setting("wgMaxArticleSize", "integer", {"minimum": 1, "maximum": 12 * 1024},
             description="Largest page, in KiB."),
    _setting("wgHiddenPrefs", "array",
             {"items": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"},
              "uniqueItems": True},
             merge=True, description="User preferences to hide."),
    _setting("wgDisableAnonTalk", "boolean", {}, wiki_admin=True,
             description="Hide talk pages of anonymous users."),
    _setting("wgEnotifWatchlist", "boolean", {},
             description="E-mail users about changes to watched pages."),
    _setting("wgArticleCountMethod", "string", {"enum": ["link", "any"]},
             description="What counts as an article in the statistics."),
]  # fmt: skip


@dataclass
class Catalog:
    """The catalog's definitions as plain data, keyed by setting name."""

    definitions: dict[str, SettingDefinition]

    @classmethod
    def load(cls) -> Catalog:
        return cls({d.name: d for d in SettingDefinition.objects.all()})

    def merges(self, name: str) -> bool:
        definition = self.definitions.get(name)
        return definition is not None and definition.merge_strategy == MergeStrategy.MERGE


def validate_value(definition: SettingDefinition, value: Any) -> Any:
    """The value if it satisfies the setting's schema; else InvalidInput naming the rule."""
    name = definition.name
    if value is None:
        raise InvalidInput(
            f"{name}: null is not a value; remove the setting from the layer instead",
            field=name,
            rule="not_null",
        )
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_VALUE_BYTES:
        raise InvalidInput(
            f"{name}: value is {size} bytes as JSON, at most {MAX_VALUE_BYTES} allowed",
            field=name,
            rule=f"max_bytes:{MAX_VALUE_BYTES}",
        )
    validator = jsonschema.Draft202012Validator(definition.schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        rule = f"{error.validator}:{json.dumps(error.validator_value, sort_keys=True)}"
        raise InvalidInput(
            f"{name} {error.json_path}: {shorten(error.message, 200)}", field=name, rule=rule[:200]
        )
    if name == "wgSitename":
        check_text(value, field=name, max_length=255)
    return value


# --- the catalog ---------------------------------------------------------------------------


def _check_setting_name(name: object) -> str:
    if not isinstance(name, str) or not SETTING_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"setting name {name!r} breaks the rule {SETTING_NAME_RE.pattern}",
            field="name",
            rule=SETTING_NAME_RE.pattern,
        )
    if name.startswith(PROTECTED_SETTING_PREFIXES):
        raise InvalidInput(
            f"{name} is set by the MediaWiki include or holds secrets; it cannot be a setting",
            field="name",
            rule="not_protected",
        )
    return name


# What a setting's schema may say at its top level: the validation keywords of JSON Schema
# 2020-12 and its annotations.
SCHEMA_KEYWORDS = frozenset(jsonschema.Draft202012Validator.VALIDATORS) | {
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
}


def _check_schema(type_: object, schema: object) -> dict[str, Any]:
    if type_ not in SettingType.values:
        raise InvalidInput(
            f"type {type_!r} must be one of {', '.join(SettingType.values)}",
            field="type",
            rule="enum:" + ",".join(SettingType.values),
        )
    if not isinstance(schema, dict):
        raise InvalidInput("schema must be a JSON object", field="schema", rule="type:object")
    schema = {"type": type_, **schema}
    if schema["type"] != type_:
        raise InvalidInput(
            f"schema type {schema['type']!r} differs from the setting's type {type_!r}",
            field="schema",
            rule="type_matches",
        )
    unknown = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unknown:
        # JSON Schema ignores keywords it does not know: a typo ("maxLenght") would check
        # nothing at all, silently.
        raise InvalidInput(
            f"schema has keywords JSON Schema does not know: {', '.join(unknown)[:200]}",
            field="schema",
            rule="known_keywords",
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidInput(
            f"schema is not a valid JSON Schema: {exc.message}",
            field="schema",
            rule="json_schema_2020_12",
        ) from None
    return schema


@transaction.atomic
def setting_create(
    *,
    actor,
    name: object,
    type: object,
    schema: object,
    default: Any = None,
    merge_strategy: object = MergeStrategy.REPLACE,
    editable_by: object = EditableBy.OPS,
    description: object = "",
) -> SettingDefinition:
    """Add a setting to the catalog (ops only)."""
    if not is_ops(actor):
        raise NotAllowed("only ops may add settings to the catalog")
    name = _check_setting_name(name)
    schema = _check_schema(type, schema)
    if merge_strategy not in MergeStrategy.values:
        raise InvalidInput(
            f"merge_strategy {merge_strategy!r} must be replace or merge",
            field="merge_strategy",
            rule="enum:replace,merge",
        )
    mergeable = (SettingType.ARRAY, SettingType.OBJECT)
    if merge_strategy == MergeStrategy.MERGE and type not in mergeable:
        raise InvalidInput(
            "only array and object settings can merge",
            field="merge_strategy",
            rule="merge_needs_array_or_object",
        )
    if editable_by not in EditableBy.values:
        raise InvalidInput(
            f"editable_by {editable_by!r} must be wiki-admin or ops",
            field="editable_by",
            rule="enum:wiki-admin,ops",
        )
    description = check_text(description, field="description", max_length=500, required=False)
    definition = SettingDefinition(
        name=name,
        type=str(type),  # _check_schema accepted it: one of SettingType's strings
        schema=schema,
        merge_strategy=merge_strategy,
        editable_by=editable_by,
        description=description,
    )
    if default is not None:
        validate_value(definition, default)
    definition.default = default
    try:
        with transaction.atomic():
            definition.save()
    except IntegrityError as exc:
        raise InvalidInput(f"setting {name} already exists", field="name", rule="unique") from exc
    audit(
        actor=actor,
        action="setting.create",
        target=definition,
        after={"name": name, "type": type, "schema": schema, "default": default},
    )
    # Imported here: farm.publishing renders exports, which resolve with this package.
    from farm import publishing

    publishing.mark_all()  # a default may change every wiki's effective settings
    return definition
