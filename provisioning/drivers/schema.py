"""Schema templates: MediaWiki-style SQL files with `/*_*/` and `/*$wgDBTableOptions*/`.

Both placeholders are SQL comments, so a template loaded without substitution still runs,
silently without the table prefix and with the server's default charset. `render_schema`
therefore refuses a template whose placeholders survive substitution.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from provisioning.drivers.base import PermanentError

TABLE_PREFIX_RE = re.compile(r"^[a-z0-9_]{0,16}$")
PLACEHOLDERS = ("/*_*/", "/*$wgDBTableOptions*/", "/*i*/")


def render_schema(path: str | Path, *, table_prefix: str, table_options: str) -> str:
    """Read a schema template and substitute MediaWiki's placeholders."""
    if not TABLE_PREFIX_RE.fullmatch(table_prefix):
        raise PermanentError(
            f"table prefix {table_prefix!r} breaks the rule {TABLE_PREFIX_RE.pattern}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PermanentError(f"schema template {path} cannot be read: {exc}") from exc
    text = (
        text.replace("/*_*/", table_prefix)
        .replace("/*$wgDBTableOptions*/", table_options)
        .replace("/*i*/", table_prefix)
    )
    leftover = [p for p in PLACEHOLDERS if p in text]
    if leftover:
        raise PermanentError(f"schema template {path} still has placeholders {leftover}")
    return text


def split_statements(sql: str) -> Iterator[str]:
    """Split an SQL script into statements on `;`, ignoring ones inside quotes and comments."""
    statement: list[str] = []
    quote = ""
    i, length = 0, len(sql)
    while i < length:
        char = sql[i]
        if quote:
            statement.append(char)
            if char == "\\" and quote != "`" and i + 1 < length:
                statement.append(sql[i + 1])
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            statement.append(char)
        elif sql.startswith("--", i) or char == "#":
            end = sql.find("\n", i)
            i = length if end == -1 else end
            continue
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = length if end == -1 else end + 2
            continue
        elif char == ";":
            text = "".join(statement).strip()
            if text:
                yield text
            statement = []
        else:
            statement.append(char)
        i += 1
    text = "".join(statement).strip()
    if text:
        yield text


def schema_tables(sql: str) -> list[str]:
    """Names of the tables a rendered schema creates, in order."""
    pattern = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"]?(\w+)", re.I)
    return [m.group(1) for m in pattern.finditer(sql)]
