"""A private OpenStack Swift with the s3api middleware, started for the test session.

Real S3 semantics that moto does not enforce (1,000 keys per multi-delete, Content-MD5,
versioning with delete markers) are only tested against a real server, and Debian's Swift is
the one these machines can run. Recipe: ../shared/notes/swift-s3api.md.

Use it by binding the fixture in a test module (an assignment, so that test arguments
named `swift_s3` do not read as redefinitions of an unused import):

    from tests import swift_server

    swift_s3 = swift_server.swift_s3

Everything lives in one temporary folder (configs, rings, the device, logs) and every port
is picked free at start, so two test runs on one machine do not collide. Each server runs in
its own process group, which teardown ends by group id.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import service_unavailable

ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"
SERVER_KINDS = ("object", "container", "account")
REQUIRED_COMMANDS = (
    "swift-ring-builder",
    "swift-object-server",
    "swift-container-server",
    "swift-account-server",
    "swift-proxy-server",
)
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 40

SWIFT_CONF = """\
[swift-hash]
swift_hash_path_suffix = wiki-farm-tests
swift_hash_path_prefix = wiki-farm-tests

[storage-policy:0]
name = Policy-0
default = yes
"""

SERVER_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 1
swift_dir = {etc}
devices = {devices}
mount_check = false
user = {user}
log_level = WARNING

[pipeline:main]
pipeline = {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[{kind}-replicator]

[{kind}-auditor]
"""

# The pipeline of the recipe; `cache` is dropped when memcached is not installed (the
# proxy then works without a token/info cache, only a little slower).
PROXY_PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api "
    "tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server"
)

PROXY_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 1
swift_dir = {etc}
user = {user}
log_level = WARNING

[pipeline:main]
pipeline = {pipeline}

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:s3api]
use = egg:swift#s3api
location = {region}
max_multi_delete_objects = 1000

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_object_versioning = true

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:symlink]
use = egg:swift#symlink
"""


class SwiftStartError(RuntimeError):
    """Swift is installed but did not come up; the message carries the log tails."""


@dataclass
class SwiftCluster:
    """One throw-away Swift: its folders, ports and the processes started for it."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def devices(self) -> Path:
        return self.root / "srv" / "node"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def prepare(self) -> None:
        for folder in (self.etc, self.devices / "d1", self.root / "run", self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for name in ("object", "container", "account", "proxy", "memcached"):
            self.ports[name] = free_port()
        (self.etc / "swift.conf").write_text(SWIFT_CONF)
        for kind in SERVER_KINDS:
            self._build_ring(kind)
            (self.etc / f"{kind}-server.conf").write_text(
                SERVER_CONF.format(kind=kind, port=self.ports[kind], **self._common())
            )
        (self.etc / "proxy-server.conf").write_text(
            PROXY_CONF.format(
                port=self.ports["proxy"],
                pipeline=self._proxy_pipeline(),
                region=REGION,
                memcached_port=self.ports["memcached"],
                **self._common(),
            )
        )

    def start(self) -> None:
        if shutil.which("memcached"):
            self._spawn(
                "memcached",
                ["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0"]
                + (["-u", "root"] if os.geteuid() == 0 else []),
            )
        for kind in SERVER_KINDS:
            self._spawn(kind, [f"swift-{kind}-server", str(self.etc / f"{kind}-server.conf"), "-v"])
        self._spawn("proxy", ["swift-proxy-server", str(self.etc / "proxy-server.conf"), "-v"])
        self._wait_until_ready()

    def stop(self) -> None:
        """End each process group this cluster started: politely first, then by force."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Forked workers may outlive their parent for a moment: make sure the groups are gone.
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)

    def log_tails(self) -> str:
        parts = []
        for log_file in sorted(self.log_dir.glob("*.log")):
            lines = log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {log_file} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def _common(self) -> dict[str, str]:
        return {
            "etc": str(self.etc),
            "devices": str(self.devices),
            "user": pwd.getpwuid(os.getuid()).pw_name,
        }

    def _proxy_pipeline(self) -> str:
        if shutil.which("memcached"):
            return PROXY_PIPELINE
        return PROXY_PIPELINE.replace(" cache ", " ")

    def _build_ring(self, kind: str) -> None:
        builder = str(self.etc / f"{kind}.builder")
        device = f"r1z1-127.0.0.1:{self.ports[kind]}/d1"
        for arguments in (["create", "10", "1", "1"], ["add", device, "100"], ["rebalance"]):
            result = subprocess.run(
                ["swift-ring-builder", builder, *arguments],
                capture_output=True,
                text=True,
                check=False,
            )
            # rebalance exits 1 for warnings (e.g. one device is "underbalanced"); 2 is failure.
            if result.returncode > 1:
                raise SwiftStartError(
                    f"swift-ring-builder {kind} {arguments[0]} failed:\n"
                    f"{result.stdout}\n{result.stderr}"
                )

    def _spawn(self, name: str, command: list[str]) -> None:
        executable = shutil.which(command[0]) or command[0]
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            self.processes[name] = subprocess.Popen(
                [executable, *command[1:]],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_processes_alive()
            backends_up = all(port_accepts(self.ports[kind]) for kind in SERVER_KINDS)
            if backends_up and healthcheck_ok(self.endpoint_url):
                return
            time.sleep(0.2)
        raise SwiftStartError(f"Swift did not answer /healthcheck in {START_TIMEOUT_SECONDS}s")

    def _check_processes_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SwiftStartError(f"{name} exited with status {process.returncode}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def healthcheck_ok(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/healthcheck", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def missing_commands() -> list[str]:
    return [command for command in REQUIRED_COMMANDS if shutil.which(command) is None]


@pytest.fixture(scope="session")
def swift_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start Swift once per session; yield how to reach its S3 API."""
    missing = missing_commands()
    if missing:
        service_unavailable(
            f"OpenStack Swift is not installed (missing {', '.join(missing)}); "
            "run .ci/install-swift.sh"
        )
    cluster = SwiftCluster(root=tmp_path_factory.mktemp("swift"))
    try:
        cluster.prepare()
        cluster.start()
    except SwiftStartError as exc:
        cluster.stop()
        pytest.fail(f"{exc}\n{cluster.log_tails()}", pytrace=False)
    try:
        yield {
            "endpoint_url": cluster.endpoint_url,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": REGION,
            "log_dir": str(cluster.log_dir),
        }
    finally:
        cluster.stop()
