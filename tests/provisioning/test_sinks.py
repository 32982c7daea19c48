"""The archive storage (provisioning/sinks.py) on each backend it meets in a farm.

FileSystemStorage in tmp_path is the embedded default; django-storages' S3Storage runs
against Swift's s3api (what production-like S3 refuses, Swift refuses too) and moto. The
S3 options are those of `_archive_storage()` in portal/settings.py, with path addressing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import pytest
from botocore.config import Config
from django.core.files.base import ContentFile
from moto.server import ThreadedMotoServer

from provisioning import sinks
from provisioning.archives import (
    MANIFEST_FILE,
    SEARCH_FILE,
    read_compressed,
    read_manifest,
    write_compressed,
)
from provisioning.drivers.base import PermanentError, TransientError, iter_ndjson
from provisioning.sinks import (
    SPOOL_BYTES,
    archive_sink,
    backup_sink,
    delete_wiki_archives,
    source_sink,
)
from tests import swift_server
from tests.swift_server import free_port

# Makes the session fixture visible to this module's tests (pytest finds it by name).
swift_s3 = swift_server.swift_s3

ARCHIVE_ID = "20260101T120000Z-0123abcd"
OTHER_ID = "20260202T000000Z-deadbeef"
BACKUP_ID = "20260303T030000Z-00ff00ff"


@dataclass
class ArchiveStorage:
    """The backend the test runs on, and a way to see all of it without the Sink."""

    files: Callable[[], dict[str, bytes]]


def use_archive_storage(settings: Any, config: dict[str, Any]) -> None:
    # Django drops its cached storages when STORAGES changes (and again when it is restored).
    settings.STORAGES = {**settings.STORAGES, sinks.STORAGE_ALIAS: config}


def s3_config(options: dict[str, str], bucket: str, **overrides: Any) -> dict[str, Any]:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": options["endpoint_url"],
            "region_name": options["region"],
            "access_key": options["access_key"],
            "secret_key": options["secret_key"],
            "addressing_style": "path",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            **overrides,
        },
    }


def raw_client(options: dict[str, str]) -> Any:
    """A client of the tests' own, to make buckets and look at them beside the storage."""
    return boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        region_name=options["region"],
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def bucket_files(client: Any, bucket: str) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
    return found


def folder_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def moto_options() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {
            "endpoint_url": f"http://{host}:{port}",
            "region": "us-east-1",
            "access_key": "moto",
            "secret_key": "moto",
        }
    finally:
        server.stop()


def s3_archive_storage(settings: Any, options: dict[str, str]) -> ArchiveStorage:
    client = raw_client(options)
    bucket = f"farm-archives-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    use_archive_storage(settings, s3_config(options, bucket))
    return ArchiveStorage(lambda: bucket_files(client, bucket))


@pytest.fixture(
    params=["filesystem", pytest.param("swift", marks=pytest.mark.swift), "moto"],
)
def archive_storage(request: pytest.FixtureRequest, settings: Any, tmp_path: Path):
    if request.param == "filesystem":
        root = tmp_path / "storage"
        use_archive_storage(
            settings,
            {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(root), "allow_overwrite": True},
            },
        )
        return ArchiveStorage(lambda: folder_files(root))
    options = request.getfixturevalue("swift_s3" if request.param == "swift" else "moto_options")
    return s3_archive_storage(settings, options)


def write(sink: sinks.Sink, file_name: str, body: bytes) -> None:
    with sink.writer(file_name) as stream:
        stream.write(body)


def read(sink: sinks.Sink, file_name: str) -> bytes:
    with sink.reader(file_name) as stream:
        return stream.read()


# Streams -------------------------------------------------------------------------------


def ndjson_lines(count: int) -> Iterator[bytes]:
    """Search documents of about 1 KB that gzip shrinks by a quarter at most."""
    rng = random.Random(20260101)  # noqa: S311 (test data, not secrets)
    for n in range(count):
        text = base64.b64encode(rng.randbytes(768)).decode()
        yield json.dumps({"id": n, "text": text}).encode() + b"\n"


@pytest.mark.slow
def test_a_multi_megabyte_gzip_stream_round_trips_line_by_line(archive_storage):
    sink = archive_sink("ab", ARCHIVE_ID)
    line_count = 12_500  # ~13 MB of NDJSON, ~10 MB gzipped
    plain = hashlib.sha256()

    def produce(stream: BinaryIO) -> dict[str, Any]:
        for line in ndjson_lines(line_count):
            plain.update(line)
            stream.write(line)
        return {"documents": line_count}

    written = write_compressed(sink, SEARCH_FILE, produce)

    # Past the spool's memory and S3's multipart threshold: both paths are exercised.
    assert written["bytes"] > SPOOL_BYTES
    stored = archive_storage.files()
    assert list(stored) == [f"archives/ab/{ARCHIVE_ID}/{SEARCH_FILE}"]
    [stored_bytes] = stored.values()
    assert hashlib.sha256(stored_bytes).hexdigest() == written["sha256"]  # as written, not decoded

    def consume(stream: BinaryIO) -> dict[str, Any]:
        read_back = hashlib.sha256()
        first = stream.readline()
        read_back.update(first)
        documents = [json.loads(first)["id"]]
        for document in iter_ndjson(stream):  # what a search restore iterates
            read_back.update(json.dumps(document).encode() + b"\n")
            documents.append(document["id"])
        return {"sha256": read_back.hexdigest(), "ids": documents}

    result = read_compressed(sink, SEARCH_FILE, consume)
    assert result["sha256"] == plain.hexdigest()
    assert result["ids"] == list(range(line_count))


def test_a_writer_whose_block_raises_leaves_no_file(archive_storage):
    sink = archive_sink("ab", ARCHIVE_ID)
    write(sink, MANIFEST_FILE, b"the old manifest")

    with pytest.raises(RuntimeError, match="dump broke"):
        with sink.writer(MANIFEST_FILE) as stream:
            stream.write(b"a new manifest, never finished")
            raise RuntimeError("dump broke")
    with pytest.raises(RuntimeError, match="dump broke"):
        with sink.writer("database.sql.gz") as stream:
            stream.write(b"x" * (SPOOL_BYTES + 1))  # already spooled to disk
            raise RuntimeError("dump broke")

    def produce_and_fail(stream: BinaryIO) -> dict[str, Any]:
        stream.write(b'{"id": 1}\n')
        raise ValueError("search went away")

    with pytest.raises(ValueError, match="search went away"):
        write_compressed(sink, SEARCH_FILE, produce_and_fail)

    assert archive_storage.files() == {
        f"archives/ab/{ARCHIVE_ID}/{MANIFEST_FILE}": b"the old manifest"
    }


def test_writing_a_name_again_overwrites_it_under_the_same_name(archive_storage):
    sink = archive_sink("ab", ARCHIVE_ID)
    for body in (b"first", b"the second, longer than the others", b"third"):
        write(sink, MANIFEST_FILE, body)

    assert archive_storage.files() == {f"archives/ab/{ARCHIVE_ID}/{MANIFEST_FILE}": b"third"}
    assert read(sink, MANIFEST_FILE) == b"third"
    assert sink.exists(MANIFEST_FILE)


def test_a_missing_file_is_permanent(archive_storage):
    sink = archive_sink("ab", ARCHIVE_ID)
    write(archive_sink("abc", ARCHIVE_ID), MANIFEST_FILE, b"{}")  # a neighbour's is no help

    assert not sink.exists(MANIFEST_FILE)
    with pytest.raises(PermanentError, match="does not exist"):
        read(sink, MANIFEST_FILE)
    with pytest.raises(PermanentError, match="does not exist"):
        read_manifest(sink)


# Names ---------------------------------------------------------------------------------


@pytest.fixture
def storage_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any storage call fails the test: names must be refused before one is made."""

    class Unreachable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the archive storage was asked for {name}")

    monkeypatch.setattr(sinks, "archive_storage", Unreachable)


BAD_FILE_NAMES = [
    "../manifest.json",
    "../../../wikis/ab/LocalSettings.php",
    "a/b",
    "/etc/passwd",
    ".hidden",
    "",
    ".",
    "..",
    "Manifest.json",
    "a\\b",
    "a\0b",
    "manifest.json\n",
    "x" * 102,
]
BAD_ARCHIVE_IDS = [
    "../../wikis/abc",
    f"{ARCHIVE_ID}/..",
    f"{ARCHIVE_ID}/../{OTHER_ID}",
    f"/{ARCHIVE_ID}",
    "..",
    "",
    ARCHIVE_ID.upper(),
    f"{ARCHIVE_ID}\n",
    ARCHIVE_ID[:-1],
]
BAD_WIKI_IDS = ["../ab", "ab/..", "ab/", "/ab", "AB", "a", "1ab", "", "ab\n", "a" * 33, "a-b"]


@pytest.mark.parametrize("file_name", BAD_FILE_NAMES)
def test_bad_file_names_are_refused_before_any_storage_call(storage_unreachable, file_name):
    for sink in (archive_sink("ab", ARCHIVE_ID), backup_sink(BACKUP_ID, "ab")):
        with pytest.raises(PermanentError, match="breaks the rule"):
            write(sink, file_name, b"x")
        with pytest.raises(PermanentError, match="breaks the rule"):
            read(sink, file_name)
        with pytest.raises(PermanentError, match="breaks the rule"):
            sink.exists(file_name)


@pytest.mark.parametrize("bad_id", BAD_ARCHIVE_IDS)
def test_bad_archive_and_backup_ids_are_refused_before_any_storage_call(
    storage_unreachable, bad_id
):
    attempts: list[Callable[[], object]] = [
        lambda: archive_sink("ab", bad_id),
        lambda: backup_sink(bad_id, "ab"),
        lambda: source_sink("ab", {"kind": "archive", "id": bad_id}),
        lambda: source_sink("ab", {"kind": "backup", "id": bad_id}),
    ]
    for attempt in attempts:
        with pytest.raises(PermanentError, match="archive id"):
            attempt()


@pytest.mark.parametrize("bad_wiki", BAD_WIKI_IDS)
def test_bad_wiki_ids_are_refused_before_any_storage_call(storage_unreachable, bad_wiki):
    attempts: list[Callable[[], object]] = [
        lambda: archive_sink(bad_wiki, ARCHIVE_ID),
        lambda: backup_sink(BACKUP_ID, bad_wiki),
        lambda: source_sink(bad_wiki, {"kind": "archive", "id": ARCHIVE_ID}),
        lambda: delete_wiki_archives(bad_wiki),
    ]
    for attempt in attempts:
        with pytest.raises(PermanentError, match="wiki id"):
            attempt()


def test_folders_are_named_from_their_parts():
    assert archive_sink("ab", ARCHIVE_ID).folder == f"archives/ab/{ARCHIVE_ID}/"
    assert backup_sink(BACKUP_ID, "ab").folder == f"backups/{BACKUP_ID}/ab/"
    assert source_sink("ab", {"kind": "archive", "id": ARCHIVE_ID}) == archive_sink(
        "ab", ARCHIVE_ID
    )
    assert source_sink("ab", {"kind": "backup", "id": BACKUP_ID}) == backup_sink(BACKUP_ID, "ab")


# Deleting ------------------------------------------------------------------------------


def test_delete_of_one_folder_leaves_its_neighbours(archive_storage):
    folders = {
        "mine": archive_sink("ab", ARCHIVE_ID),
        "my other archive": archive_sink("ab", OTHER_ID),
        "abc's archive": archive_sink("abc", ARCHIVE_ID),
        "my backup": backup_sink(ARCHIVE_ID, "ab"),
        "abc's backup": backup_sink(ARCHIVE_ID, "abc"),
    }
    for label, sink in folders.items():
        write(sink, MANIFEST_FILE, label.encode())
    write(folders["mine"], "database.sql.gz", b"dump")
    before = archive_storage.files()

    assert folders["mine"].delete() == 2
    assert folders["mine"].delete() == 0

    assert archive_storage.files() == {
        name: body
        for name, body in before.items()
        if not name.startswith(f"archives/ab/{ARCHIVE_ID}/")
    }
    assert sinks.archive_storage().listdir("archives/ab/")[0] == [OTHER_ID]  # no empty folder

    assert folders["my backup"].delete() == 1
    assert read(folders["abc's backup"], MANIFEST_FILE) == b"abc's backup"
    assert sorted(archive_storage.files()) == [
        f"archives/ab/{OTHER_ID}/{MANIFEST_FILE}",
        f"archives/abc/{ARCHIVE_ID}/{MANIFEST_FILE}",
        f"backups/{ARCHIVE_ID}/abc/{MANIFEST_FILE}",
    ]


def test_delete_wiki_archives_deletes_only_folders_named_like_archive_ids(archive_storage):
    write(archive_sink("ab", ARCHIVE_ID), MANIFEST_FILE, b"{}")
    write(archive_sink("ab", ARCHIVE_ID), "database.sql.gz", b"dump")
    write(archive_sink("ab", OTHER_ID), MANIFEST_FILE, b"{}")
    write(archive_sink("abc", ARCHIVE_ID), MANIFEST_FILE, b"abc's")
    write(backup_sink(BACKUP_ID, "ab"), MANIFEST_FILE, b"a backup is not an archive")
    not_ours = {
        "archives/ab/not-an-archive/notes.txt": b"left by an operator",
        "archives/ab/README": b"a file beside the archive folders",
    }
    storage = sinks.archive_storage()
    for name, body in not_ours.items():
        assert storage.save(name, ContentFile(body)) == name

    assert delete_wiki_archives("ab") == 3
    assert delete_wiki_archives("ab") == 0
    assert delete_wiki_archives("nowiki") == 0

    assert archive_storage.files() == {
        **not_ours,
        f"archives/abc/{ARCHIVE_ID}/{MANIFEST_FILE}": b"abc's",
        f"backups/{BACKUP_ID}/ab/{MANIFEST_FILE}": b"a backup is not an archive",
    }


# S3 errors -----------------------------------------------------------------------------


def every_call(sink: sinks.Sink) -> list[Callable[[], object]]:
    return [
        lambda: write(sink, MANIFEST_FILE, b"{}"),
        lambda: read(sink, MANIFEST_FILE),
        lambda: sink.exists(MANIFEST_FILE),
        lambda: sink.delete(),
        lambda: delete_wiki_archives("ab"),
    ]


def test_an_unreachable_s3_endpoint_is_transient(settings):
    closed = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region": "us-east-1",
        "access_key": "key",
        "secret_key": "secret",
    }
    # One attempt per call: botocore's default retries would only make the test slow.
    use_archive_storage(
        settings,
        s3_config(
            closed,
            "farm-archives",
            client_config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        ),
    )
    for call in every_call(archive_sink("ab", ARCHIVE_ID)):
        with pytest.raises(TransientError, match="archive storage"):
            call()


@pytest.mark.swift
def test_a_wrong_secret_key_is_permanent(settings, swift_s3):
    client = raw_client(swift_s3)
    bucket = f"farm-archives-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    use_archive_storage(settings, s3_config({**swift_s3, "secret_key": "not-the-secret"}, bucket))

    for call in every_call(archive_sink("ab", ARCHIVE_ID)):
        with pytest.raises(PermanentError, match="SignatureDoesNotMatch|AccessDenied|403"):
            call()


def test_a_missing_bucket_is_permanent(settings, moto_options):
    use_archive_storage(settings, s3_config(moto_options, "farm-archives-never-made"))

    with pytest.raises(PermanentError, match="NoSuchBucket"):
        write(archive_sink("ab", ARCHIVE_ID), MANIFEST_FILE, b"{}")


def test_a_failing_download_is_a_driver_error(settings, httpserver):
    # S3Storage looks (HEAD) when a file is opened and downloads (GET) on the first read:
    # an answer like this one must still reach the engine as a TransientError.
    slow_down = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        "<Message>Please reduce your request rate.</Message></Error>"
    )
    key = f"/farm-archives/archives/ab/{ARCHIVE_ID}/{MANIFEST_FILE}"
    httpserver.expect_request(key, method="HEAD").respond_with_data(
        "", headers={"Content-Length": "2", "ETag": '"99914b932bd37a50b983c5e7c90ae93b"'}
    )
    httpserver.expect_request(key, method="GET").respond_with_data(
        slow_down, status=503, content_type="application/xml"
    )
    endpoint = {
        "endpoint_url": httpserver.url_for("/").rstrip("/"),
        "region": "us-east-1",
        "access_key": "key",
        "secret_key": "secret",
    }
    use_archive_storage(
        settings,
        s3_config(
            endpoint,
            "farm-archives",
            client_config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        ),
    )

    with pytest.raises(TransientError, match="SlowDown"):
        read(archive_sink("ab", ARCHIVE_ID), MANIFEST_FILE)


def test_a_filesystem_save_that_fails_midway_leaves_no_file_under_the_name(tmp_path):
    """The embedded sink renames a complete file into place: a crash mid-save (here, the
    content failing after its first chunk) leaves neither a partial file nor its name."""
    from django.core.files import File

    from provisioning.sinks import AtomicFileSystemStorage

    class Failing(File):
        def chunks(self, chunk_size=None):
            yield b"first chunk"
            raise OSError("disk went away")

    storage = AtomicFileSystemStorage(location=str(tmp_path), allow_overwrite=True)
    storage.save("archives/abc/20261208T000000Z-0000abcd/manifest.json", File(io.BytesIO(b"old")))
    with pytest.raises(OSError):
        storage.save(
            "archives/abc/20261208T000000Z-0000abcd/manifest.json", Failing(io.BytesIO(b""))
        )
    folder = tmp_path / "archives" / "abc" / "20261208T000000Z-0000abcd"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]
    assert (folder / "manifest.json").read_bytes() == b"old"
