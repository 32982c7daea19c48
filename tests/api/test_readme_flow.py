"""The documented commands work: docs/api.md's curl flow request by request with Django's
test client, then every command of the README's tours and of docs/api.md replayed in order
against the test database (`manage.py` through call_command, curl through the test client),
and the docs' `follow` shell function run in bash. The engine is driven by run_pending where
a worker would run it."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from farm.models import Wiki
from tests.api.conftest import API, session_client
from tests.provisioning.helpers import run_pending, run_runs
from tests.services import service_unavailable

pytestmark = pytest.mark.django_db


def script(token: str) -> APIClient:
    """What curl sends: the token header and JSON bodies."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def new_token(user, scope: str) -> str:
    response = session_client(user).post(
        API + "/tokens/", {"name": f"script ({scope})", "scope": scope}, format="json"
    )
    assert response.status_code == 201
    return response.json()["token"]


def follow(client: APIClient, accepted) -> dict:
    """Poll the Location of a 202 until the operation ends (a worker runs it meanwhile)."""
    assert accepted.status_code == 202, accepted.content
    location = accepted["Location"]
    for _ in range(20):
        operation = client.get(location).json()
        if operation["state"] in ("succeeded", "failed"):
            return operation
        run_pending()
    raise AssertionError(f"operation {location} never ended")


def test_readme_flow(farm_drivers, admin_user_a, ops_user):
    alice = script(new_token(admin_user_a, "write"))
    ops = script(new_token(ops_user, "ops"))

    # 1. create
    created = alice.post(
        API + "/wikis/",
        {"id": "alpha", "family": "default", "sitename": "Alpha"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="create-alpha-1",
    )
    operation = follow(alice, created)
    assert operation["state"] == "succeeded" and operation["progress"] == 1.0
    assert alice.get(API + "/wikis/alpha/").json()["state"] == "active"

    # 2. archive
    operation = follow(alice, alice.post(API + "/wikis/alpha/archive/", format="json"))
    assert operation["state"] == "succeeded"
    archived = alice.get(API + "/wikis/alpha/").json()
    assert archived["state"] == "archived" and archived["resources"]["archive"]["database_tables"]

    # 3. ask for an unarchive; ops approve it
    request = alice.post(
        API + "/unarchive-requests/", {"wiki": "alpha", "reason": "project restarts"}, format="json"
    )
    assert request.status_code == 201
    pending = ops.get(API + "/unarchive-requests/?state=pending").json()["results"]
    assert [r["wiki"] for r in pending] == ["alpha"]
    approved = ops.post(f"{API}/unarchive-requests/{pending[0]['id']}/approve/", {}, format="json")
    assert follow(ops, approved)["state"] == "succeeded"
    assert alice.get(API + "/wikis/alpha/").json()["state"] == "active"

    # 4. purge (ops, with the id typed again)
    purge = ops.post(API + "/wikis/alpha/purge/", {"confirm": "alpha"}, format="json")
    assert follow(ops, purge)["state"] == "succeeded"
    tombstone = Wiki.objects.get(pk="alpha")
    assert tombstone.state == "purged"
    assert tombstone.purge_receipt["verification"]["database_exists"] is False


# --- replaying the documented commands ---------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "api.md")  # in the order a reader meets them
END_STATES = ("succeeded", "failed", "abandoned")


def shell_blocks(document: Path) -> list[str]:
    """The fenced ```sh blocks of a Markdown file, continuation lines joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", document.read_text(), re.DOTALL | re.MULTILINE)
    return [block.replace("\\\n", " ") for block in blocks]


def function_definition(block: str, name: str) -> str | None:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}$", block, re.DOTALL | re.MULTILINE)
    return match.group(0) if match else None


def without_origin(url: str) -> str:
    """What the test client needs of an absolute URL: its path and query."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class DocShell:
    """Runs the documented shell lines the way bash would, with Django in place of the
    network: `manage.py` through call_command, curl through the test client, jq on `.a.b`
    paths, and the docs' own `follow` polling while the engine runs what a worker would.
    A command it does not know fails the test: teach it rather than skip a doc line."""

    def __init__(self, spectacular_file: Path):
        self.variables: dict[str, str] = {}
        self.spectacular_file = spectacular_file
        self.replayed: list[str] = []

    # parsing: quotes, $VAR, ${VAR}, $(...), pipes and comments -----------------------------

    def run_block(self, block: str) -> None:
        lines = iter(block.splitlines())
        for line in lines:
            if re.match(r"^\w+\(\) \{$", line):  # a function: replayed as a command below
                for body_line in lines:
                    if body_line == "}":
                        break
                continue
            pipeline, comment = self.parse(line)
            if pipeline:
                self.run_line(line.strip(), pipeline, comment)

    def parse(self, text: str) -> tuple[list[list[str]], str]:
        pipeline: list[list[str]] = [[]]
        word: str | None = None
        i = 0
        while i < len(text):
            char = text[i]
            if char in " \t" or char == "|":
                if word is not None:
                    pipeline[-1].append(word)
                    word = None
                if char == "|":
                    pipeline.append([])
                i += 1
                continue
            if char == "#" and word is None:
                return [words for words in pipeline if words], text[i + 1 :].strip()
            word = word or ""
            if char == "'":
                end = text.index("'", i + 1)
                word += text[i + 1 : end]
                i = end + 1
            elif char == '"':
                i += 1
                while text[i] != '"':
                    if text[i] == "$":
                        i, expanded = self.expand(text, i)
                        word += expanded
                    else:
                        if text[i] == "\\" and text[i + 1] in '"\\$':
                            i += 1
                        word += text[i]
                        i += 1
                i += 1
            elif char == "$":
                i, expanded = self.expand(text, i)
                word += expanded
            else:
                word += char
                i += 1
        if word is not None:
            pipeline[-1].append(word)
        return [words for words in pipeline if words], ""

    def expand(self, text: str, i: int) -> tuple[int, str]:
        """`$NAME`, `${NAME}` or `$(command)` at text[i]: where parsing goes on, and the value."""
        if text.startswith("$(", i):
            end = self.closing_parenthesis(text, i + 2)
            return end + 1, self.substitute(text[i + 2 : end])
        match = re.compile(r"\$\{(\w+)\}|\$(\w+)").match(text, i)
        assert match, f"unsupported $ in {text!r}"
        name = match.group(1) or match.group(2)
        assert name in self.variables, f"${name} is used before the docs set it: {text!r}"
        return match.end(), self.variables[name]

    @staticmethod
    def closing_parenthesis(text: str, i: int) -> int:
        depth, quote = 1, None
        for j in range(i, len(text)):
            char = text[j]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return j
        raise AssertionError(f"unbalanced $( in {text!r}")

    def substitute(self, command: str) -> str:
        pipeline, _ = self.parse(command)
        return self.run_pipeline(pipeline).rstrip("\n")

    # running ---------------------------------------------------------------------------------

    def run_line(self, line: str, pipeline: list[list[str]], comment: str) -> None:
        first = pipeline[0]
        assignment = re.fullmatch(r"([A-Za-z_]\w*)=(.*)", first[0], re.DOTALL)
        if assignment and len(pipeline) == 1 and len(first) == 1:
            self.variables[assignment.group(1)] = assignment.group(2)
        else:
            output = self.run_pipeline(pipeline).strip()
            expected = self.expected_output(comment)
            if expected is not None:
                assert output == expected, f"{line}\nprinted {output!r}, the docs say {expected!r}"
        self.replayed.append(line)

    @staticmethod
    def expected_output(comment: str) -> str | None:
        """A comment that is what the line prints: a JSON string, or an operation's end."""
        if comment in END_STATES or re.fullmatch(r'"[^"]*"', comment):
            return comment
        return None

    def run_pipeline(self, pipeline: list[list[str]]) -> str:
        output = ""
        for words in pipeline:
            output = self.command(words, output)
        return output

    def command(self, words: list[str], stdin: str) -> str:
        program, arguments = words[0], words[1:]
        if program in ("python", ".venv/bin/python") and arguments[:1] == ["manage.py"]:
            return self.manage(arguments[1:])
        if program == "bin/dev":
            assert arguments[:1] in (["run"], ["test"]), words
            if arguments[0] == "run":  # what it does to the registry before serving
                self.manage(["farm_seed_demo"])
            return ""
        if words == ["cat", "/proc/sys/kernel/random/uuid"]:
            return f"{uuid.uuid4()}\n"
        handlers = {"curl": self.curl, "jq": lambda args: self.jq(args, stdin)}
        handlers["follow"] = self.follow
        handlers["follow_run"] = self.follow_run
        assert program in handlers, f"the replay does not know `{program}`: teach it"
        return handlers[program](arguments)

    def manage(self, arguments: list[str]) -> str:
        if arguments[0] == "spectacular" and "--file" in arguments:
            # The documented command rewrites docs/openapi.yaml; here it writes a copy.
            arguments = list(arguments)
            arguments[arguments.index("--file") + 1] = str(self.spectacular_file)
        stdout, stderr = io.StringIO(), io.StringIO()
        call_command(*arguments, stdout=stdout, stderr=stderr)
        return stdout.getvalue()

    def curl(self, arguments: list[str]) -> str:
        method, headers, data, url = None, {}, None, None
        options = iter(arguments)
        for option in options:
            if option in ("-s", "-S", "-sS"):
                continue
            if option == "-X":
                method = next(options)
            elif option == "-H":
                name, value = next(options).split(":", 1)
                headers[name.strip()] = value.strip()
            elif option in ("-d", "--data"):
                data = next(options)
            else:
                assert not option.startswith("-"), f"the replay does not know curl {option}"
                url = option
        method = method or ("POST" if data is not None else "GET")
        content_type = headers.pop("Content-Type", "application/x-www-form-urlencoded")
        response = Client().generic(
            method, without_origin(url), data or "", content_type, headers=headers
        )
        body = response.content.decode()
        assert response.status_code < 400, f"curl {method} {url}: {response.status_code} {body}"
        return body

    @staticmethod
    def jq(arguments: list[str], stdin: str) -> str:
        raw = arguments[0] == "-r"
        path = arguments[-1]
        assert re.fullmatch(r"\.\w*(\.\w+)*", path), f"the replay's jq knows only .a.b: {path}"
        value = json.loads(stdin)
        for key in filter(None, path.split(".")):
            value = value.get(key) if isinstance(value, dict) else None
        return f"{value if raw and isinstance(value, str) else json.dumps(value)}\n"

    @staticmethod
    def follow(arguments: list[str]) -> str:
        """The docs' follow(): poll until the operation ends; an error answer ends it too.
        Between polls the engine runs what a worker would."""
        header, url = arguments
        name, value = header.split(":", 1)
        for _ in range(20):
            response = Client().get(without_origin(url), headers={name: value.strip()})
            state = response.json().get("state") if response.status_code == 200 else None
            assert state, f"follow {url}: not an operation: {response.content.decode()}"
            if state in END_STATES:
                return f"{state}\n"
            run_pending()
        raise AssertionError(f"operation {url} never ended")

    @staticmethod
    def follow_run(arguments: list[str]) -> str:
        """The docs' follow_run(): poll a run until it leaves pending and running; between
        polls the `runs` workers' work is done."""
        header, url = arguments
        name, value = header.split(":", 1)
        for _ in range(20):
            response = Client().get(without_origin(url), headers={name: value.strip()})
            state = response.json().get("state") if response.status_code == 200 else None
            assert state, f"follow_run {url}: not a run: {response.content.decode()}"
            if state not in ("pending", "running"):
                failed = response.json()["progress"]["totals"]["failed"]
                assert state == "finished" and not failed, f"run {url} {state}"
                return f"{state}\n"
            run_runs()
        raise AssertionError(f"run {url} never ended")


@pytest.fixture
def worker_while_waiting(monkeypatch):
    """`manage.py wiki|run ... --wait` sleep between polls: the engine runs meanwhile."""
    from provisioning.management.commands import wiki

    monkeypatch.setattr(wiki.time, "sleep", lambda seconds: (run_runs(), run_pending()))
    monkeypatch.delenv("FARM_CLI_ACTOR", raising=False)


def test_every_documented_command_works_in_order(farm_drivers, worker_while_waiting, tmp_path):
    """The README's tours, then docs/api.md, as a new user runs them on a fresh portal."""
    shell = DocShell(spectacular_file=tmp_path / "openapi.yaml")
    for document in DOCUMENTS:
        for block in shell_blocks(document):
            shell.run_block(block)

    assert len(shell.replayed) > 30, shell.replayed
    assert Wiki.objects.get(pk="alpha").state == "purged"  # the CLI tour
    assert Wiki.objects.filter(pk="beta").exists()  # the README's API call
    gamma = Wiki.objects.get(pk="gamma")  # docs/api.md's flow
    assert gamma.state == "purged" and gamma.purge_receipt["verification"]
    assert shell.spectacular_file.read_text().startswith("openapi: ")


def run_follow(tmp_path: Path, answers: list[str], curl_status: int = 0):
    """docs/api.md's follow() in bash, with curl answering `answers` one by one."""
    if shutil.which("jq") is None:
        service_unavailable("jq is not installed (the docs' scripts use it)")
    flow = next(block for block in shell_blocks(DOCUMENTS[1]) if "follow() {" in block)
    (tmp_path / "answers").write_text("".join(f"{answer}\n" for answer in answers))
    # curl runs in $(...), a subshell: it counts its calls in a file.
    script = f"""
        echo 0 > "{tmp_path}/calls"
        curl() {{
          calls=$(($(cat "{tmp_path}/calls") + 1)); echo "$calls" > "{tmp_path}/calls"
          sed -n "${{calls}}p" "{tmp_path}/answers"; return {curl_status}
        }}
        sleep() {{ :; }}
        {function_definition(flow, "follow")}
        follow "Authorization: Token x" "http://portal/api/v1/operations/1/"
    """
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=10, check=False
    )


def test_the_docs_follow_ends_with_the_operation(tmp_path):
    answers = ['{"state": "pending"}', '{"state": "running"}', '{"state": "succeeded"}']
    done = run_follow(tmp_path, answers)
    assert (done.returncode, done.stdout) == (0, "succeeded\n")
    failed = run_follow(tmp_path, ['{"state": "running"}', '{"state": "failed"}'])
    assert (failed.returncode, failed.stdout) == (1, "failed\n")


@pytest.mark.parametrize(
    "answer",
    [
        '{"code": "not_found", "message": "Not found."}',
        '{"code": "authentication_failed", "message": "Invalid token."}',
        '{"state": null}',
        "<html>Bad gateway</html>",
    ],
)
def test_the_docs_follow_stops_on_an_error_answer(tmp_path, answer):
    # The old loop polled `state=null` for ever: here it would hit the timeout.
    stopped = run_follow(tmp_path, [answer] * 1000)
    assert stopped.returncode != 0 and "not an operation" in stopped.stderr
    assert run_follow(tmp_path, [], curl_status=7).returncode != 0  # no answer at all
