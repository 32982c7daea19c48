"""The rules for names in the registry (DESIGN section 2), in one place."""

from __future__ import annotations

import re

from farm.errors import InvalidInput

WIKI_ID_RULE = r"^[a-z][a-z0-9]{1,31}$"
WIKI_ID_RE = re.compile(WIKI_ID_RULE, re.ASCII)
# Reserved names may be shorter than any valid id (`w`): reserving them is harmless.
RESERVED_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,31}$", re.ASCII)
FAMILY_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$", re.ASCII)
TAG_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}[a-z0-9]$", re.ASCII)
DATABASE_PATTERN_RE = re.compile(r"^[a-z0-9_]*\{id\}[a-z0-9_]*$", re.ASCII)
DATABASE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$", re.ASCII)
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$", re.ASCII)
MAX_WIKI_ID_LENGTH = 32
# How much of a refused input a message echoes back.
ECHO_LIMIT = 60


def shorten(text: object, limit: int = ECHO_LIMIT) -> str:
    """Text as a message may echo it: at most `limit` characters, then "…"."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def echo(value: object) -> str:
    """A refused input quoted for a message, cut short: a long input is not sent back."""
    return repr(shorten(value)) if isinstance(value, str) else shorten(repr(value))


def check_wiki_id(value: object) -> str:
    if not isinstance(value, str) or not WIKI_ID_RE.fullmatch(value):
        raise InvalidInput(
            f"wiki id {echo(value)} breaks the rule {WIKI_ID_RULE}: a lowercase ASCII letter, "
            "then 1 to 31 lowercase ASCII letters or digits",
            field="wiki_id",
            rule=WIKI_ID_RULE,
        )
    return value


def check_database_pattern(pattern: str) -> str:
    """A family's pattern must give a valid MariaDB identifier (<= 64) for every wiki id."""
    if not DATABASE_PATTERN_RE.fullmatch(pattern) or pattern.count("{id}") != 1:
        raise InvalidInput(
            f"database pattern {echo(pattern)} must contain {{id}} once and otherwise only "
            "lowercase letters, digits and underscores",
            field="database_pattern",
            rule=DATABASE_PATTERN_RE.pattern,
        )
    longest = pattern.replace("{id}", "a" * MAX_WIKI_ID_LENGTH)
    if len(longest) > 64 or not DATABASE_NAME_RE.fullmatch(pattern.replace("{id}", "a")):
        raise InvalidInput(
            f"database pattern {echo(pattern)} must start with a letter or {{id}} and give at "
            "most 64 characters for a 32-character wiki id",
            field="database_pattern",
            rule="length<=64",
        )
    return pattern


def check_name(value: object, *, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(
            f"{field} {echo(value)} breaks the rule {pattern.pattern}",
            field=field,
            rule=pattern.pattern,
        )
    return value


def check_text(value: object, *, field: str, max_length: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field, rule="type:string")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field, rule="required")
    if len(value) > max_length or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidInput(
            f"{field} must be at most {max_length} printable characters",
            field=field,
            rule=f"max_length:{max_length}",
        )
    return value
