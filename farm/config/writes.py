"""Writes to config blocks, with their versioned history, diff and rollback."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from farm import policies
from farm.audit import audit
from farm.config.catalog import REGISTRY_SETTINGS, validate_value
from farm.config.resolve import DEFAULT_BLOCK, Block, registry_values
from farm.errors import InvalidInput, NotAllowed, NotFound, WrongState
from farm.models import (
    ConfigLayer,
    ConfigValue,
    ConfigVersion,
    EditableBy,
    Family,
    SettingDefinition,
    Tag,
    Wiki,
    WikiState,
)
from farm.roles import is_ops

# --- checks --------------------------------------------------------------------------------


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
    wiki = policies.visible_wiki(actor, target) if layer == ConfigLayer.WIKI else None
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
    policies.require_manager(actor, wiki, what=f"the configuration of wiki {wiki.pk}")


def _require_editor(actor, block: Block, wiki: Wiki | None, definition: SettingDefinition):
    """As `_require_block_editor`, and a wiki admin only for wiki-editable settings."""
    _require_block_editor(actor, block, wiki)
    if is_ops(actor):
        return
    if definition.editable_by != EditableBy.WIKI_ADMIN:
        raise NotAllowed(
            f"{definition.name} is editable by ops only", field=definition.name, rule="ops_only"
        )


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
    if registry_field and wiki is not None:
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
        if value is None and row is not None:
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


def _mark_exports(block: Block) -> None:
    """Mark the wikis that inherit from `block` for publishing."""
    # Imported here: farm.publishing renders exports, which resolve with this package.
    from farm import publishing

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
