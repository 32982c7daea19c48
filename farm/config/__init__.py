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

The package: `catalog` (the settings and their rules), `resolve` (effective values with
provenance), `writes` (config_set, config_unset, rollback, history). Callers import from
the package.
"""

from farm.config.catalog import (
    CATALOG_LAYER,
    MAX_VALUE_BYTES,
    PROTECTED_SETTING_PREFIXES,
    REGISTRY_SETTINGS,
    SEEDED_SETTINGS,
    SETTING_NAME_RE,
    Catalog,
    setting_create,
    validate_value,
)
from farm.config.resolve import (
    DEFAULT_BLOCK,
    Block,
    EffectiveValue,
    chain_for,
    effective_settings_for_wikis,
    load_blocks,
    merge_values,
    registry_values,
    resolve,
    tag_precedence,
    wiki_effective_config,
)
from farm.config.writes import (
    block_state_at,
    block_values,
    check_block,
    config_block,
    config_diff,
    config_rollback,
    config_set,
    config_unset,
    history_for,
)

__all__ = [
    "CATALOG_LAYER",
    "DEFAULT_BLOCK",
    "MAX_VALUE_BYTES",
    "PROTECTED_SETTING_PREFIXES",
    "REGISTRY_SETTINGS",
    "SEEDED_SETTINGS",
    "SETTING_NAME_RE",
    "Block",
    "Catalog",
    "EffectiveValue",
    "block_state_at",
    "block_values",
    "chain_for",
    "check_block",
    "config_block",
    "config_diff",
    "config_rollback",
    "config_set",
    "config_unset",
    "effective_settings_for_wikis",
    "history_for",
    "load_blocks",
    "merge_values",
    "registry_values",
    "resolve",
    "setting_create",
    "tag_precedence",
    "validate_value",
    "wiki_effective_config",
]
