"""Schema templates: MediaWiki-style SQL files with `/*_*/` and `/*$wgDBTableOptions*/`.

Both placeholders are SQL comments, so a template loaded without substitution still runs,
silently without the table prefix and with the server's default charset. `render_sql`
therefore refuses a template whose placeholders survive substitution. A migration file is
such a template too: the same rendering, the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from provisioning.drivers.base import PermanentError

TABLE_PREFIX_RE = re.compile(r"^[a-z0-9_]{0,16}$")
PLACEHOLDERS = ("/*_*/", "/*$wgDBTableOptions*/", "/*i*/")
MEDIAWIKI_TIMESTAMP_RE = re.compile(r"^[0-9]{14}$")


def render_schema(path: str | Path, *, table_prefix: str, table_options: str) -> str:
    """Read a schema (or migration) template and substitute MediaWiki's placeholders."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PermanentError(f"schema template {path} cannot be read: {exc}") from exc
    return render_sql(
        text,
        table_prefix=table_prefix,
        table_options=table_options,
        source=f"schema template {path}",
    )


def render_sql(
    text: str, *, table_prefix: str, table_options: str, source: str = "SQL template"
) -> str:
    """Substitute MediaWiki's placeholders in template text already read (a migration whose
    bytes were checked against their hash is rendered from those bytes, not read again)."""
    if not TABLE_PREFIX_RE.fullmatch(table_prefix):
        raise PermanentError(
            f"table prefix {table_prefix!r} breaks the rule {TABLE_PREFIX_RE.pattern}"
        )
    text = (
        text.replace("/*_*/", table_prefix)
        .replace("/*$wgDBTableOptions*/", table_options)
        .replace("/*i*/", table_prefix)
    )
    leftover = [p for p in PLACEHOLDERS if p in text]
    if leftover:
        raise PermanentError(f"{source} still has placeholders {leftover}")
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


def mediawiki_timestamp(value: bytes | str | None) -> str | None:
    """A MediaWiki timestamp (`YYYYMMDDHHMMSS`, always UTC) as ISO-8601; None when there is
    none, or it is not one (then no time is better than a wrong one)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not text or not MEDIAWIKI_TIMESTAMP_RE.fullmatch(text):
        return None
    try:
        moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:  # 14 digits, but not a date (month 13, say)
        return None
    return moment.isoformat()
