"""Per-wiki configuration in layers (DESIGN section 6): the settings catalog, resolution
with provenance, validation against each setting's JSON Schema, and the versioned history
with diff and rollback.

Resolution follows MediaWiki's SiteConfiguration: the wiki's value, else its tags' values
(the tag of highest priority first; equal priorities by name), else its family's, else the
farm default, else the catalog default. A setting whose merge strategy is `merge` combines
maps (recursively, the more specific layer winning a key) and arrays (union, in order) down
that chain instead.

Two settings live in the registry at the wiki layer: `wgSitename` is the wiki's `sitename`
and `wgLanguageCode` its `language`. Writing them at the wiki layer writes those fields, so
there is one source of truth for them; they can be changed there but not removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction
from django.db.models import Q

from farm.audit import audit
from farm.errors import InvalidInput, NotAllowed, NotFound, WrongState
from farm.models import (
    ConfigLayer,
    ConfigValue,
    ConfigVersion,
    EditableBy,
    Family,
    MergeStrategy,
    SettingDefinition,
    SettingType,
    Tag,
    Wiki,
    WikiState,
)
from farm.roles import WIKI_ADMIN, has_role, is_ops, sees_all_wikis
from farm.validators import LANGUAGE_RE, check_text

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


# --- reading the layers --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A config block: one layer and its target ("" for the farm default)."""

    layer: str
    target: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"layer": self.layer, "target": self.target}


DEFAULT_BLOCK = Block(ConfigLayer.DEFAULT)


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


def load_blocks(wiki_ids: Iterable[str] | None = None) -> dict[Block, dict[str, Any]]:
    """Every block's values in one query; wiki blocks only for `wiki_ids` when given."""
    values = ConfigValue.objects.values_list("layer", "target", "setting__name", "value")
    if wiki_ids is not None:
        values = values.exclude(layer=ConfigLayer.WIKI) | values.filter(
            layer=ConfigLayer.WIKI, target__in=list(wiki_ids)
        )
    blocks: dict[Block, dict[str, Any]] = {}
    for layer, target, name, value in values:
        blocks.setdefault(Block(layer, target), {})[name] = value
    return blocks


def tag_precedence(tags: Iterable[tuple[str, int]]) -> list[str]:
    """Tag names, the one that wins first: highest priority, then by name."""
    return [name for name, priority in sorted(tags, key=lambda t: (-t[1], t[0]))]


def chain_for(wiki_id: str | None, family: str, tags: list[str]) -> list[Block]:
    """The blocks a wiki inherits from, least specific first; `tags` in precedence order."""
    chain = [DEFAULT_BLOCK, Block(ConfigLayer.FAMILY, family)]
    chain += [Block(ConfigLayer.TAG, tag) for tag in reversed(tags)]
    if wiki_id is not None:
        chain.append(Block(ConfigLayer.WIKI, wiki_id))
    return chain


def merge_values(base: Any, override: Any) -> Any:
    """Combine a less specific value with a more specific one (the `merge` strategy)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_values(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return override


@dataclass
class EffectiveValue:
    value: Any
    layer: str
    target: str
    # For merged settings: every block that contributed, least specific first.
    merged_from: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {"value": self.value, "layer": self.layer, "target": self.target}
        if self.merged_from:
            data["merged_from"] = self.merged_from
        return data


def resolve(
    catalog: Catalog, chain: list[Block], blocks: dict[Block, dict[str, Any]]
) -> dict[str, EffectiveValue]:
    """Each setting's effective value and where it came from; settings without any value
    (no layer, no catalog default) are left out: MediaWiki's own default applies."""
    effective: dict[str, EffectiveValue] = {}
    for name, definition in catalog.definitions.items():
        if definition.default is not None:
            effective[name] = EffectiveValue(definition.default, CATALOG_LAYER, "")
    for block in chain:
        for name, value in blocks.get(block, {}).items():
            current = effective.get(name)
            if current is not None and catalog.merges(name):
                contributors = current.merged_from or [
                    {"layer": current.layer, "target": current.target}
                ]
                effective[name] = EffectiveValue(
                    merge_values(current.value, value),
                    block.layer,
                    block.target,
                    [*contributors, block.as_dict()],
                )
            else:
                effective[name] = EffectiveValue(value, block.layer, block.target)
    return effective


def registry_values(sitename: str, language: str) -> dict[str, Any]:
    return {"wgSitename": sitename, "wgLanguageCode": language}


def _wiki_block_values(wiki: Wiki, blocks: dict[Block, dict[str, Any]]) -> dict[str, Any]:
    block = Block(ConfigLayer.WIKI, wiki.pk)
    return {**blocks.get(block, {}), **registry_values(wiki.sitename, wiki.language)}


def effective_settings_for_wikis(
    rows: list[tuple[str, str, str, str]], wiki_tags: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Effective values of many wikis with a constant number of queries.

    `rows` are (wiki id, family, sitename, language); `wiki_tags` maps a wiki id to its tags
    in precedence order. Wikis sharing a family and tags share the resolution of everything
    above the wiki layer, so a farm of 10,000 wikis resolves a handful of chains.
    """
    catalog = Catalog.load()
    blocks = load_blocks(wiki_id for wiki_id, *_ in rows)
    shared: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    result = {}
    for wiki_id, family, sitename, language in rows:
        tags = tuple(wiki_tags.get(wiki_id, ()))
        key = (family, tags)
        if key not in shared:
            inherited = resolve(catalog, chain_for(None, family, list(tags)), blocks)
            shared[key] = {name: v.value for name, v in inherited.items()}
        values = dict(shared[key])
        own = {
            **blocks.get(Block(ConfigLayer.WIKI, wiki_id), {}),
            **registry_values(sitename, language),
        }
        for name, value in own.items():
            if name in values and catalog.merges(name):
                values[name] = merge_values(values[name], value)
            else:
                values[name] = value
        result[wiki_id] = dict(sorted(values.items()))
    return result


def wiki_effective_config(*, actor, wiki_id: object) -> dict[str, Any]:
    """A wiki's effective settings with provenance and the value each layer gives."""
    wiki = _visible_wiki(actor, wiki_id)
    catalog = Catalog.load()
    tags = tag_precedence(wiki.tags.values_list("name", "priority"))
    chain = chain_for(wiki.pk, wiki.family.name, tags)
    blocks = _load_chain_blocks(chain)
    blocks[chain[-1]] = _wiki_block_values(wiki, blocks)
    effective = resolve(catalog, chain, blocks)
    settings_view = {}
    for name in sorted(set(catalog.definitions) | set(effective)):
        definition = catalog.definitions.get(name)
        entry = effective[name].as_dict() if name in effective else {"value": None}
        entry["layers"] = [
            {**block.as_dict(), "value": blocks[block][name]}
            for block in chain
            if name in blocks.get(block, {})
        ]
        if definition is not None:
            entry["default"] = definition.default
            entry["merge_strategy"] = definition.merge_strategy
            entry["editable_by"] = definition.editable_by
        settings_view[name] = entry
    return {
        "wiki": wiki.pk,
        "chain": [block.as_dict() for block in chain],
        "settings": settings_view,
    }


def _load_chain_blocks(chain: list[Block]) -> dict[Block, dict[str, Any]]:
    condition = Q()
    for block in chain:
        condition |= Q(layer=block.layer, target=block.target)
    blocks: dict[Block, dict[str, Any]] = {}
    rows = ConfigValue.objects.filter(condition).values_list(
        "layer", "target", "setting__name", "value"
    )
    for layer, target, name, value in rows:
        blocks.setdefault(Block(layer, target), {})[name] = value
    return blocks


# --- checks --------------------------------------------------------------------------------


def _visible_wiki(actor, wiki_id: object) -> Wiki:
    wiki = None
    if isinstance(wiki_id, str):
        wiki = Wiki.objects.for_user(actor).select_related("family").filter(pk=wiki_id).first()
    if wiki is None:
        raise NotFound(f"wiki {wiki_id!r} not found", field="wiki_id")
    return wiki


def check_block(actor, layer: object, target: object) -> tuple[Block, Wiki | None]:
    """The block named by `layer` and `target`, if it exists and the actor may see it."""
    if layer not in ConfigLayer.values:
        raise InvalidInput(
            f"layer {layer!r} must be one of {', '.join(ConfigLayer.values)}",
            field="layer",
            rule="enum:" + ",".join(ConfigLayer.values),
        )
    target = "" if target is None else target
    if not isinstance(target, str):
        raise InvalidInput("target must be a string", field="target", rule="type:string")
    if layer == ConfigLayer.DEFAULT:
        if target:
            raise InvalidInput(
                "the farm default has no target", field="target", rule="empty_for_default"
            )
        return DEFAULT_BLOCK, None
    if layer == ConfigLayer.FAMILY and not Family.objects.filter(name=target).exists():
        raise NotFound(f"family {target!r} not found", field="target")
    if layer == ConfigLayer.TAG and not Tag.objects.filter(name=target).exists():
        raise NotFound(f"tag {target!r} not found", field="target")
    wiki = _visible_wiki(actor, target) if layer == ConfigLayer.WIKI else None
    return Block(layer, target), wiki


def _definition(name: object) -> SettingDefinition:
    definition = None
    if isinstance(name, str):
        definition = SettingDefinition.objects.filter(name=name).first()
    if definition is None:
        raise NotFound(f"setting {name!r} is not in the catalog", field="setting")
    return definition


def _require_block_editor(actor, block: Block, wiki: Wiki | None) -> None:
    """Ops edit every block; a wiki admin only the blocks of their own wikis."""
    if is_ops(actor):
        return
    if block.layer != ConfigLayer.WIKI or wiki is None:
        raise NotAllowed(f"only ops may change the {block.layer} layer")
    if not has_role(actor, WIKI_ADMIN) or not wiki.owners.filter(pk=actor.pk).exists():
        raise NotAllowed(f"you may not change the configuration of wiki {wiki.pk}")


def _require_editor(actor, block: Block, wiki: Wiki | None, definition: SettingDefinition):
    """As `_require_block_editor`, and a wiki admin only for wiki-editable settings."""
    _require_block_editor(actor, block, wiki)
    if is_ops(actor):
        return
    if definition.editable_by != EditableBy.WIKI_ADMIN:
        raise NotAllowed(
            f"{definition.name} is editable by ops only", field=definition.name, rule="ops_only"
        )


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
            f"{name} {error.json_path}: {error.message}", field=name, rule=rule[:200]
        )
    if name == "wgSitename":
        check_text(value, field=name, max_length=255)
    return value


# --- current values of a block -------------------------------------------------------------


def block_values(block: Block, wiki: Wiki | None) -> dict[str, Any]:
    values = dict(
        ConfigValue.objects.filter(layer=block.layer, target=block.target).values_list(
            "setting__name", "value"
        )
    )
    if wiki is not None:
        values.update(registry_values(wiki.sitename, wiki.language))
    return dict(sorted(values.items()))


def config_block(*, actor, layer: object, target: object = "") -> dict[str, Any]:
    block, wiki = check_block(actor, layer, target)
    latest = (
        ConfigVersion.objects.filter(layer=block.layer, target=block.target)
        .values_list("pk", flat=True)
        .first()
    )
    return {**block.as_dict(), "version": latest or 0, "values": block_values(block, wiki)}


# --- writes --------------------------------------------------------------------------------


def _write(
    *,
    actor,
    block: Block,
    wiki: Wiki | None,
    definition: SettingDefinition,
    value: Any,
    rollback_to: int | None = None,
) -> ConfigVersion | None:
    """Give `definition` the `value` (None: no value) in the block, with history and audit.

    Returns the new version, or None when the block already held that value.
    """
    name = definition.name
    registry_field = REGISTRY_SETTINGS.get(name) if wiki is not None else None
    if registry_field:
        wiki = Wiki.objects.select_for_update().get(pk=wiki.pk)
        before = getattr(wiki, registry_field)
        if value is None:
            raise InvalidInput(
                f"{name} is the wiki's {registry_field}: change it, it cannot be removed",
                field=name,
                rule="required",
            )
        if before == value:
            return None
        setattr(wiki, registry_field, value)
        wiki.save(update_fields=[registry_field])
    else:
        row = (
            ConfigValue.objects.select_for_update()
            .filter(layer=block.layer, target=block.target, setting=definition)
            .first()
        )
        before = row.value if row is not None else None
        if before == value:
            return None
        if value is None:
            row.delete()
        elif row is None:
            ConfigValue.objects.create(
                layer=block.layer, target=block.target, setting=definition, value=value
            )
        else:
            row.value = value
            row.save(update_fields=["value", "updated_at"])
    version = ConfigVersion.objects.create(
        actor=actor if actor.is_authenticated else None,
        actor_name=actor.get_username(),
        layer=block.layer,
        target=block.target,
        setting=name,
        before=before,
        after=value,
        rollback_to=rollback_to,
    )
    action = "config.unset" if value is None else "config.set"
    if rollback_to:
        action = "config.rollback"
    audit(
        actor=actor,
        action=action,
        target=version,
        before={**block.as_dict(), "setting": name, "value": before},
        after={**block.as_dict(), "setting": name, "value": value, "version": version.pk},
    )
    _mark_exports(block)
    return version


def _mark_exports(block: Block | None) -> None:
    """Mark the wikis that inherit from `block` (None: every wiki) for publishing."""
    # Imported here: farm.publishing renders exports, which resolve with this module.
    from farm import publishing

    if block is None:
        publishing.mark_all()
    else:
        publishing.mark_block(block)


def _check_writable(block: Block, wiki: Wiki | None) -> None:
    if wiki is not None and wiki.state == WikiState.PURGED:
        raise WrongState(f"wiki {wiki.pk} is purged", current_state=wiki.state)


@transaction.atomic
def config_set(
    *, actor, layer: object, target: object = "", setting: object, value: Any
) -> ConfigVersion | None:
    """Give a setting a value in one block; None when it already had that value."""
    block, wiki = check_block(actor, layer, target)
    definition = _definition(setting)
    _require_editor(actor, block, wiki, definition)
    _check_writable(block, wiki)
    value = validate_value(definition, value)
    if definition.name == "wgLanguageCode" and wiki is not None:
        value = value.lower()
    return _write(actor=actor, block=block, wiki=wiki, definition=definition, value=value)


@transaction.atomic
def config_unset(
    *, actor, layer: object, target: object = "", setting: object
) -> ConfigVersion | None:
    """Remove a setting's value from one block (it inherits again); None if it had none."""
    block, wiki = check_block(actor, layer, target)
    definition = _definition(setting)
    _require_editor(actor, block, wiki, definition)
    _check_writable(block, wiki)
    return _write(actor=actor, block=block, wiki=wiki, definition=definition, value=None)


def _version_number(value: object, *, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(
            f"{field_name} must be a version number (an integer >= 0)",
            field=field_name,
            rule="type:integer>=0",
        )
    return value


def _check_block_version(block: Block, version: int, *, field_name: str) -> None:
    """0 is the block before any change; any other number must be one of its versions."""
    versions = ConfigVersion.objects.filter(layer=block.layer, target=block.target)
    if version and not versions.filter(pk=version).exists():
        raise NotFound(
            f"version {version} is not a version of the {block.layer} block {block.target!r}",
            field=field_name,
        )


def block_state_at(block: Block, version: int) -> dict[str, Any]:
    """The values the block's history gives as of `version` (settings it ever tracked)."""
    state: dict[str, Any] = {}
    history = ConfigVersion.objects.filter(
        layer=block.layer, target=block.target, pk__lte=version
    ).order_by("pk")
    for name, after in history.values_list("setting", "after"):
        if after is None:
            state.pop(name, None)
        else:
            state[name] = after
    return state


def config_diff(
    *, actor, layer: object, target: object = "", from_version: object, to_version: object
) -> dict[str, Any]:
    """What changed in a block between two of its versions: {setting: {from, to}}."""
    block, _ = check_block(actor, layer, target)
    old = _version_number(from_version, field_name="from")
    new = _version_number(to_version, field_name="to")
    _check_block_version(block, old, field_name="from")
    _check_block_version(block, new, field_name="to")
    before, after = block_state_at(block, old), block_state_at(block, new)
    changes = {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }
    return {**block.as_dict(), "from": old, "to": new, "changes": changes}


@transaction.atomic
def config_rollback(
    *, actor, layer: object, target: object = "", version: object
) -> list[ConfigVersion]:
    """Bring the block's settings back to their values as of `version`.

    The rollback is itself recorded as new versions (one per setting it changes). It is
    checked completely before anything is written: one setting the actor may not change,
    or a value today's schema refuses, and nothing changes.
    """
    block, wiki = check_block(actor, layer, target)
    # Before anything else: a rollback that would change nothing is still not the
    # caller's to ask for if the block is not theirs to edit.
    _require_block_editor(actor, block, wiki)
    number = _version_number(version, field_name="version")
    _check_block_version(block, number, field_name="version")
    _check_writable(block, wiki)
    wanted = block_state_at(block, number)
    tracked = set(
        ConfigVersion.objects.filter(layer=block.layer, target=block.target).values_list(
            "setting", flat=True
        )
    )
    current = block_values(block, wiki)
    plan = []
    for name in sorted(tracked):
        value = wanted.get(name)
        if current.get(name) == value or (value is None and name in REGISTRY_SETTINGS and wiki):
            continue  # unchanged, or a registry field the history never set before `number`
        definition = _definition(name)
        _require_editor(actor, block, wiki, definition)
        if value is not None:
            validate_value(definition, value)
        plan.append((definition, value))
    versions = []
    for definition, value in plan:
        written = _write(
            actor=actor,
            block=block,
            wiki=wiki,
            definition=definition,
            value=value,
            rollback_to=number,
        )
        if written is not None:
            versions.append(written)
    return versions


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
        type=type,
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
    _mark_exports(None)
    return definition


def history_for(actor, *, layer: object = None, target: object = None, setting: object = None):
    """The history rows the actor may read, newest first, optionally narrowed down."""
    versions = ConfigVersion.objects.for_user(actor)
    if layer is not None:
        versions = versions.filter(layer=layer)
    if target is not None:
        versions = versions.filter(target=target)
    if setting is not None:
        versions = versions.filter(setting=setting)
    return versions.order_by("-pk")


def may_read_exports(user) -> bool:
    """Exports list every wiki: ops and auditors (and service accounts holding those roles)."""
    return sees_all_wikis(user)
