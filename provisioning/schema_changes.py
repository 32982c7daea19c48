"""What a migration run applies to one wiki: an SQL file or a maintenance command.

An SQL file is a MediaWiki-style template (`/*_*/`, `/*$wgDBTableOptions*/`), rendered as
the schema load renders it and run statement by statement by the database driver. A
command is split into words first and `{wiki}` / `{dbname}` substituted inside each word,
then run without a shell, so a wiki id can never add an argument or a shell construct.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from farm.errors import InvalidInput
from provisioning.drivers import database_driver
from provisioning.drivers.base import PermanentError, TransientError, WikiResources, hook_argv
from provisioning.drivers.schema import render_sql

# Characters that mean something to a shell: a command that holds them was written for one,
# and running it without a shell would not do what its author meant.
SHELL_METACHARACTERS = set(";&|<>`$(){}*?!~\\\n\r") - set("{}")
PLACEHOLDERS = ("{wiki}", "{dbname}")
OUTPUT_TAIL_CHARS = 2000


def check_sql_file(path: object) -> tuple[str, str]:
    """The absolute path of a readable migration file and the sha256 of its bytes."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("sql_file must be the path of an SQL file", field="sql_file")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise InvalidInput(
            f"sql_file {path!r} does not exist or is not a file", field="sql_file", rule="exists"
        )
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"sql_file {path!r} cannot be read: {exc}", field="sql_file") from exc
    if not content.strip():
        raise InvalidInput(f"sql_file {path!r} is empty", field="sql_file", rule="not_empty")
    return str(file), hashlib.sha256(content).hexdigest()


def check_command(command: object) -> str:
    """A maintenance command that runs the same without a shell as its author expects."""
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput("command must be a non-empty string", field="command")
    bad = sorted({char for char in command if char in SHELL_METACHARACTERS})
    command_without = command
    for placeholder in PLACEHOLDERS:  # braces are allowed only as the two placeholders
        command_without = command_without.replace(placeholder, "")
    if "{" in command_without or "}" in command_without:
        bad.append("{ }")
    if bad:
        shown = " ".join(repr(char) for char in sorted(set(bad)))
        raise InvalidInput(
            f"command holds shell metacharacters ({shown}); it runs without a shell, so "
            "write the program and its arguments only, with {wiki} and {dbname} as values",
            field="command",
            rule="no_shell_metacharacters",
        )
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput(f"command cannot be split into words: {exc}", field="command") from exc
    if shutil.which(words[0]) is None:
        raise InvalidInput(
            f"command program {words[0]!r} is not found on this machine",
            field="command",
            rule="program_exists",
        )
    return command


def apply_sql_file(wiki: WikiResources, path: str, sha256: str) -> dict[str, Any]:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise PermanentError(f"migration file {path} cannot be read: {exc}") from exc
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise PermanentError(
            f"migration file {path} changed since the run started (sha256 {actual}, the run "
            f"has {sha256}); start a new run for the new file"
        )
    database = database_driver()
    # The bytes whose hash was just checked, not a second read of the file.
    sql = render_sql(
        content.decode("utf-8", "replace"),
        table_prefix=database.table_prefix,
        table_options=database.table_options,
        source=f"migration file {path}",
    )
    started = time.monotonic()
    result = database.apply_sql(wiki, sql)
    return {**result, "seconds": round(time.monotonic() - started, 3)}


def run_command(wiki: WikiResources, template: str) -> dict[str, Any]:
    argv = hook_argv(template, {"{wiki}": wiki.wiki_id, "{dbname}": wiki.database_name})
    timeout = settings.FARM_MIGRATION_COMMAND_TIMEOUT
    started = time.monotonic()
    try:
        # The operator's command, checked when the run was made, run without a shell.
        completed = subprocess.run(  # noqa: S603
            argv, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PermanentError(f"{argv[0]} timed out after {timeout}s for {wiki.wiki_id}") from exc
    except OSError as exc:
        raise TransientError(f"{argv[0]} cannot run: {exc}") from exc
    output = _tail(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        raise PermanentError(f"{argv[0]} exited with {completed.returncode}: {output}")
    return {
        "command": argv[0],
        "seconds": round(time.monotonic() - started, 3),
        "output_tail": output,
    }


def _tail(output: bytes) -> str:
    return output.decode("utf-8", "replace")[-OUTPUT_TAIL_CHARS:].strip()
