"""Resolution: a wiki's effective settings from its chain of config blocks (farm default,
family, tags by priority, wiki) with provenance, for one wiki or many at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from farm import policies
from farm.config.catalog import CATALOG_LAYER, Catalog
from farm.models import (
    ConfigLayer,
    ConfigValue,
    Wiki,
)

# --- reading the layers --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A config block: one layer and its target ("" for the farm default)."""

    layer: str
    target: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"layer": self.layer, "target": self.target}


DEFAULT_BLOCK = Block(ConfigLayer.DEFAULT)


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
    wiki = policies.visible_wiki(actor, wiki_id)
    catalog = Catalog.load()
    tags = tag_precedence(wiki.tags.values_list("name", "priority"))
    chain = chain_for(wiki.pk, wiki.family.name, tags)
    blocks = _load_chain_blocks(chain)
    blocks[chain[-1]] = _wiki_block_values(wiki, blocks)
    effective = resolve(catalog, chain, blocks)
    settings_view = {}
    for name in sorted(set(catalog.definitions) | set(effective)):
        definition = catalog.definitions.get(name)
        entry: dict[str, Any] = effective[name].as_dict() if name in effective else {"value": None}
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
