"""The S3 storage driver against a real S3 API (Swift's s3api) and, for fast cases, moto.

The Swift tests are the ones that matter: Swift refuses what real S3 refuses (more than
1,000 keys per multi-delete, a DeleteObjects without Content-MD5) and keeps versions and
delete markers. moto's server on loopback covers behaviour that does not depend on that.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from provisioning.drivers.base import PermanentError, TransientError, WikiResources
from provisioning.drivers.s3 import MARKER_NAME, S3StorageDriver
from tests import swift_server
from tests.swift_server import free_port

# Makes the session fixture visible to this module's tests (pytest finds it by name).
swift_s3 = swift_server.swift_s3

ARCHIVE_ID = "20261122T020000Z-0123abcd"
MiB = 1024 * 1024


def make_wiki(wiki_id: str, **metadata: Any) -> WikiResources:
    return WikiResources(
        wiki_id=wiki_id,
        database_name=f"wiki_{wiki_id}",
        storage_prefix=f"wikis/{wiki_id}/",
        metadata=metadata,
    )


def unique_bucket() -> str:
    return f"farm-test-{uuid.uuid4().hex[:12]}"


def raw_client(options: dict[str, str]) -> Any:
    """A client of the tests' own, to look at the bucket without going through the driver."""
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


def all_versions(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        entries += page.get("Versions", []) + page.get("DeleteMarkers", [])
    return entries


def put_archive_file(client: Any, bucket: str, wiki_id: str, name: str, body: bytes) -> None:
    """An archive file where the archive storage (provisioning/sinks.py) puts it."""
    client.put_object(Bucket=bucket, Key=f"archives/{wiki_id}/{ARCHIVE_ID}/{name}", Body=body)


def keys_under(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every current object under `prefix` with its bytes."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
    return found


# Swift -------------------------------------------------------------------------------


@pytest.fixture
def swift_options(swift_s3: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": swift_s3["endpoint_url"],
        "region": swift_s3["region"],
        "access_key": swift_s3["access_key"],
        "secret_key": swift_s3["secret_key"],
    }


@pytest.fixture
def swift_driver(swift_options: dict[str, str]) -> S3StorageDriver:
    return S3StorageDriver(bucket=unique_bucket(), addressing_style="path", **swift_options)


@pytest.fixture
def swift_client(swift_options: dict[str, str]) -> Any:
    return raw_client(swift_options)


@pytest.mark.swift
def test_full_cycle_on_a_versioned_bucket(swift_driver: S3StorageDriver, swift_client: Any):
    wiki = make_wiki("alpha", title="Alpha wiki")
    bucket = swift_driver.bucket

    assert swift_driver.create(wiki) == {"bucket": bucket, "marker": "wikis/alpha/.wiki-farm.json"}
    assert swift_driver.create(wiki)["marker"] == "wikis/alpha/.wiki-farm.json"  # idempotent
    marker = swift_client.get_object(Bucket=bucket, Key="wikis/alpha/.wiki-farm.json")
    assert json.loads(marker["Body"].read()) == {"title": "Alpha wiki", "wiki_id": "alpha"}

    swift_driver.put_file(wiki, "images/a/ab/Logo.png", b"png" * 1000)
    swift_driver.put_file(wiki, "readme.txt", b"hello")
    put_archive_file(swift_client, bucket, "alpha", "database.sql.gz", b"d" * MiB)

    marker_size = marker["ContentLength"]
    inventory = {"objects": 3, "bytes": marker_size + 3000 + 5}
    assert swift_driver.archive(wiki) == inventory
    inspection = swift_driver.inspect(wiki)
    assert inspection.exists
    assert inspection.bytes == inventory["bytes"]
    assert inspection.counts == {"objects": 3, "archive_objects": 1}
    assert inspection.details["archive_bytes"] == MiB

    swift_client.delete_object(Bucket=bucket, Key="wikis/alpha/.wiki-farm.json")
    assert not swift_driver.inspect(wiki).exists
    assert swift_driver.restore(wiki) == inventory  # the marker is written again
    assert swift_driver.inspect(wiki).exists

    # Several versions and delete markers, which a plain object listing does not show.
    swift_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    swift_driver.put_file(wiki, "readme.txt", b"hello again")
    swift_driver.put_file(wiki, "readme.txt", b"hello for the third time")
    swift_client.delete_object(Bucket=bucket, Key="wikis/alpha/images/a/ab/Logo.png")
    swift_client.delete_object(Bucket=bucket, Key="wikis/alpha/readme.txt")
    versions = all_versions(swift_client, bucket, "wikis/alpha/")
    assert len(versions) >= 6
    assert any("Size" not in entry for entry in versions)  # delete markers are there

    receipt = swift_driver.purge(wiki)
    assert receipt["objects_deleted"] == len(versions)
    assert receipt["archive_objects_deleted"] == 1
    assert all_versions(swift_client, bucket, "wikis/alpha/") == []
    assert all_versions(swift_client, bucket, "archives/alpha/") == []
    inspection = swift_driver.inspect(wiki)
    assert not inspection.exists
    assert inspection.counts == {"objects": 0, "archive_objects": 0}
    assert swift_driver.purge(wiki) == {"objects_deleted": 0, "archive_objects_deleted": 0}


@pytest.mark.swift
@pytest.mark.slow
def test_purge_deletes_more_than_one_batch_of_keys(
    swift_driver: S3StorageDriver, swift_client: Any
):
    wiki = make_wiki("many")
    swift_driver.create(wiki)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: swift_driver.put_file(wiki, f"f/{n:04}", b"x"), range(1100)))
    put_seconds = time.monotonic() - started

    started = time.monotonic()
    receipt = swift_driver.purge(wiki)
    purge_seconds = time.monotonic() - started

    assert receipt == {"objects_deleted": 1101, "archive_objects_deleted": 0}
    assert all_versions(swift_client, swift_driver.bucket, "wikis/many/") == []
    print(f"1,100 puts {put_seconds:.1f}s, purge of 1,101 objects {purge_seconds:.1f}s")  # noqa: T201


@pytest.mark.swift
def test_purge_of_ab_leaves_abc_intact(swift_driver: S3StorageDriver, swift_client: Any):
    ab, abc = make_wiki("ab"), make_wiki("abc")
    for wiki in (ab, abc):
        swift_driver.create(wiki)
        swift_driver.put_file(wiki, "page.txt", wiki.wiki_id.encode())
        put_archive_file(swift_client, swift_driver.bucket, wiki.wiki_id, "manifest.json", b"{}")
    abc_before = swift_driver.inspect(abc)

    assert swift_driver.purge(ab) == {"objects_deleted": 2, "archive_objects_deleted": 1}

    assert swift_driver.inspect(abc) == abc_before
    assert abc_before.counts == {"objects": 2, "archive_objects": 1}
    remaining = swift_client.list_objects_v2(Bucket=swift_driver.bucket)["Contents"]
    assert sorted(entry["Key"] for entry in remaining) == [
        f"archives/abc/{ARCHIVE_ID}/manifest.json",
        "wikis/abc/.wiki-farm.json",
        "wikis/abc/page.txt",
    ]


@pytest.mark.swift
def test_bucket_per_wiki(swift_options: dict[str, str], swift_client: Any):
    driver = S3StorageDriver(
        bucket=unique_bucket(), bucket_per_wiki=True, addressing_style="path", **swift_options
    )
    wiki = make_wiki("gamma")
    wiki_bucket = f"{driver.bucket}-gamma"

    assert driver.create(wiki)["bucket"] == wiki_bucket
    swift_client.head_bucket(Bucket=wiki_bucket)
    swift_client.put_bucket_versioning(
        Bucket=wiki_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    driver.put_file(wiki, "a.txt", b"one")
    driver.put_file(wiki, "a.txt", b"two")
    put_archive_file(swift_client, wiki_bucket, "gamma", "manifest.json", b"{}")
    assert driver.inspect(wiki).counts == {"objects": 2, "archive_objects": 1}

    assert driver.purge(wiki) == {
        "objects_deleted": 3,
        "archive_objects_deleted": 1,
        "bucket_deleted": True,
    }
    assert wiki_bucket not in [b["Name"] for b in swift_client.list_buckets()["Buckets"]]
    assert not driver.inspect(wiki).exists
    assert driver.purge(wiki) == {
        "objects_deleted": 0,
        "archive_objects_deleted": 0,
        "bucket_deleted": False,
    }


@pytest.mark.swift
def test_bucket_per_wiki_purge_keeps_objects_the_farm_did_not_write(
    swift_options: dict[str, str], swift_client: Any
):
    driver = S3StorageDriver(
        bucket=unique_bucket(), bucket_per_wiki=True, addressing_style="path", **swift_options
    )
    wiki = make_wiki("delta")
    driver.create(wiki)
    wiki_bucket = driver.bucket_for(wiki)
    swift_client.put_object(Bucket=wiki_bucket, Key="someone-else/notes.txt", Body=b"keep")

    with pytest.raises(PermanentError, match="outside the wiki's prefixes"):
        driver.purge(wiki)

    remaining = swift_client.list_objects_v2(Bucket=wiki_bucket)["Contents"]
    assert [entry["Key"] for entry in remaining] == ["someone-else/notes.txt"]


CLONE_UPLOADS = {
    "images/a/ab/Logo.png": bytes(range(256)) * 64,
    "images/thumb/a/ab/Logo.png/120px-Logo.png": b"thumb",
    "images/c/ca/Café au lait (2).png": b"a key that needs quoting in CopySource",
    "empty.txt": b"",
}


def fill_source_and_neighbours(driver: S3StorageDriver) -> None:
    """Wiki ab with CLONE_UPLOADS and an archive file, its neighbour abc, the target cd."""
    for wiki_id in ("ab", "abc", "cd"):
        driver.create(make_wiki(wiki_id, title=wiki_id))
    for relative_path, data in CLONE_UPLOADS.items():
        driver.put_file(make_wiki("ab"), relative_path, data)
    driver.put_file(make_wiki("abc"), "page.txt", b"abc's own")


def assert_cloned(client: Any, bucket: str, before: dict[str, bytes]) -> None:
    copied = keys_under(client, bucket, "wikis/cd/")
    marker = json.loads(copied.pop(f"wikis/cd/{MARKER_NAME}"))
    assert marker == {"title": "cd", "wiki_id": "cd"}  # the clone keeps its own marker
    assert copied == {f"wikis/cd/{path}": data for path, data in CLONE_UPLOADS.items()}
    assert keys_under(client, bucket, "wikis/ab") == before  # ab and abc as they were


@pytest.mark.swift
def test_copy_files_on_swift(swift_driver: S3StorageDriver, swift_client: Any):
    fill_source_and_neighbours(swift_driver)
    bucket = swift_driver.bucket
    put_archive_file(swift_client, bucket, "ab", "manifest.json", b"{}")
    before = keys_under(swift_client, bucket, "wikis/ab")

    result = swift_driver.copy_files(make_wiki("ab"), make_wiki("cd"))

    assert result == {
        "objects": len(CLONE_UPLOADS),
        "bytes": sum(len(data) for data in CLONE_UPLOADS.values()),
    }
    assert_cloned(swift_client, bucket, before)
    assert swift_driver.copy_files(make_wiki("ab"), make_wiki("cd")) == result  # idempotent
    assert_cloned(swift_client, bucket, before)
    assert swift_driver.inspect(make_wiki("cd")).counts == {
        "objects": len(CLONE_UPLOADS) + 1,
        "archive_objects": 0,
    }


@pytest.mark.swift
def test_copy_files_between_buckets_per_wiki(swift_options: dict[str, str], swift_client: Any):
    driver = S3StorageDriver(
        bucket=unique_bucket(), bucket_per_wiki=True, addressing_style="path", **swift_options
    )
    source, target = make_wiki("ab"), make_wiki("cd")
    driver.create(source)
    driver.create(target)
    driver.put_file(source, "images/x/xy/Page.png", b"png bytes")

    assert driver.copy_files(source, target) == {"objects": 1, "bytes": 9}

    assert keys_under(swift_client, driver.bucket_for(target)) == {
        "wikis/cd/.wiki-farm.json": b'{"wiki_id": "cd"}',
        "wikis/cd/images/x/xy/Page.png": b"png bytes",
    }
    assert set(keys_under(swift_client, driver.bucket_for(source))) == {
        "wikis/ab/.wiki-farm.json",
        "wikis/ab/images/x/xy/Page.png",
    }


@pytest.mark.swift
@pytest.mark.parametrize(
    "relative_path",
    ["../escape.txt", "/etc/passwd", "a//b.txt", "a/./b.txt", "a/../../b", "", "dir/", "a\\b"]
    + [MARKER_NAME],
)
def test_bad_relative_paths_are_refused(swift_driver: S3StorageDriver, relative_path: str):
    wiki = make_wiki("zeta")
    swift_driver.create(wiki)
    with pytest.raises(PermanentError, match="relative path"):
        swift_driver.put_file(wiki, relative_path, b"nope")
    assert swift_driver.archive(wiki)["objects"] == 1  # only the marker


@pytest.mark.swift
def test_wrong_secret_key_is_permanent(swift_options: dict[str, str]):
    driver = S3StorageDriver(
        bucket=unique_bucket(),
        addressing_style="path",
        **{**swift_options, "secret_key": "not-the-secret"},
    )
    with pytest.raises(PermanentError, match="SignatureDoesNotMatch|AccessDenied|403"):
        driver.create(make_wiki("eta"))


# moto --------------------------------------------------------------------------------


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


@pytest.fixture
def moto_driver(moto_options: dict[str, str]) -> S3StorageDriver:
    return S3StorageDriver(bucket=unique_bucket(), addressing_style="path", **moto_options)


def test_create_put_inspect_purge_on_moto(moto_driver: S3StorageDriver):
    wiki = make_wiki("theta", owner="ops")
    assert not moto_driver.inspect(wiki).exists
    moto_driver.create(wiki)
    moto_driver.create(wiki)
    moto_driver.put_file(wiki, "dir/file.txt", b"12345")

    inspection = moto_driver.inspect(wiki)
    assert inspection.exists
    assert inspection.counts == {"objects": 2, "archive_objects": 0}

    assert moto_driver.purge(wiki) == {"objects_deleted": 2, "archive_objects_deleted": 0}
    assert moto_driver.inspect(wiki).counts == {"objects": 0, "archive_objects": 0}
    assert moto_driver.purge(wiki) == {"objects_deleted": 0, "archive_objects_deleted": 0}


def test_archive_of_a_wiki_whose_bucket_is_gone_is_permanent(moto_driver: S3StorageDriver):
    with pytest.raises(PermanentError, match="does not exist"):
        moto_driver.archive(make_wiki("lambda"))


def test_unreachable_endpoint_is_transient():
    closed_port = free_port()
    driver = S3StorageDriver(
        bucket=unique_bucket(),
        endpoint_url=f"http://127.0.0.1:{closed_port}",
        access_key="key",
        secret_key="secret",
        addressing_style="path",
    )
    with pytest.raises(TransientError, match="may succeed later"):
        driver.create(make_wiki("mu"))


def test_slow_down_answer_is_transient(httpserver: Any):
    slow_down = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        "<Message>Please reduce your request rate.</Message></Error>"
    )
    httpserver.expect_request("/farm-throttled/wikis/nu/page.txt").respond_with_data(
        slow_down, status=503, content_type="application/xml"
    )
    driver = S3StorageDriver(
        bucket="farm-throttled",
        endpoint_url=httpserver.url_for("/").rstrip("/"),
        access_key="key",
        secret_key="secret",
        addressing_style="path",
    )
    with pytest.raises(TransientError, match="SlowDown"):
        driver.put_file(make_wiki("nu"), "page.txt", b"x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bucket": "Bad_Bucket"}, "not a valid S3 bucket name"),
        ({"bucket": "ab"}, "not a valid S3 bucket name"),
        ({"bucket": "192.168.1.1"}, "not a valid S3 bucket name"),
        ({"bucket": "farm", "addressing_style": "sideways"}, "addressing style"),
        ({"bucket": "farm", "access_key": "key"}, "together"),
    ],
)
def test_bad_configuration_is_refused(options: dict[str, Any], message: str):
    with pytest.raises(PermanentError, match=message):
        S3StorageDriver(**options)


def test_bucket_per_wiki_name_is_validated():
    driver = S3StorageDriver(bucket="f" * 62, bucket_per_wiki=True)
    with pytest.raises(PermanentError, match="not a valid S3 bucket name"):
        driver.create(make_wiki("xi"))


def test_copy_files_on_moto(moto_driver: S3StorageDriver, moto_options: dict[str, str]):
    client = raw_client(moto_options)
    fill_source_and_neighbours(moto_driver)
    moto_driver.put_file(make_wiki("cd"), "images/a/ab/Logo.png", b"stale, overwritten")
    before = keys_under(client, moto_driver.bucket, "wikis/ab")

    result = moto_driver.copy_files(make_wiki("ab"), make_wiki("cd"))

    assert result["objects"] == len(CLONE_UPLOADS)
    assert_cloned(client, moto_driver.bucket, before)


def test_copy_files_from_a_wiki_whose_bucket_is_gone_is_permanent(moto_driver: S3StorageDriver):
    with pytest.raises(PermanentError, match="does not exist"):
        moto_driver.copy_files(make_wiki("ab"), make_wiki("cd"))


def test_copy_files_into_a_missing_bucket_is_permanent(moto_options: dict[str, str]):
    driver = S3StorageDriver(
        bucket=unique_bucket(), bucket_per_wiki=True, addressing_style="path", **moto_options
    )
    driver.create(make_wiki("ab"))
    driver.put_file(make_wiki("ab"), "page.txt", b"x")

    with pytest.raises(PermanentError, match="NoSuchBucket"):
        driver.copy_files(make_wiki("ab"), make_wiki("cd"))  # cd was never created
