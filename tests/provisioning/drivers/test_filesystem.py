"""The embedded storage driver against real folders in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioning.drivers.base import PermanentError, WikiResources
from provisioning.drivers.filesystem import MARKER_NAME, FilesystemStorageDriver

ARCHIVE_ID = "20260101T120000Z-0123abcd"


def wiki(wiki_id: str = "ab", **metadata) -> WikiResources:
    return WikiResources(
        wiki_id=wiki_id,
        database_name=f"wiki_{wiki_id}",
        storage_prefix=f"wikis/{wiki_id}/",
        metadata=metadata or {"title": f"Wiki {wiki_id}", "family": "demo"},
    )


@pytest.fixture
def driver(tmp_path: Path) -> FilesystemStorageDriver:
    return FilesystemStorageDriver(root=tmp_path / "storage")


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def write_archive(driver, resources, name: str, data: bytes, archive_id=ARCHIVE_ID) -> None:
    with driver.open_archive_writer(resources, archive_id, name) as stream:
        stream.write(data)


# -- create, archive, restore, inspect ---------------------------------------------------


def test_create_writes_the_marker_with_the_metadata(driver):
    result = driver.create(wiki())
    again = driver.create(wiki())

    marker = driver.root / "wikis" / "ab" / MARKER_NAME
    assert result == again == {"marker": str(marker.resolve())}
    assert json.loads(marker.read_text()) == {
        "wiki_id": "ab",
        "metadata": {"title": "Wiki ab", "family": "demo"},
    }
    assert files_under(driver.root) == {f"wikis/ab/{MARKER_NAME}": marker.read_bytes()}


def test_archive_inventories_every_file_including_the_marker(driver):
    driver.create(wiki())
    driver.put_file(wiki(), "images/a/ab/Cat.png", b"\x89PNG" + b"\0" * 96)
    driver.put_file(wiki(), "README", b"hello")
    namespace = driver.root / "wikis" / "ab"
    expected_bytes = sum(len(data) for data in files_under(namespace).values())

    first = driver.archive(wiki())

    assert first == {"objects": 3, "bytes": expected_bytes}
    assert driver.archive(wiki()) == first
    assert len(files_under(namespace)) == 3  # files stay in place
    seen = driver.inspect(wiki())
    assert (seen.exists, seen.bytes, seen.counts["objects"]) == (True, expected_bytes, 3)


def test_restore_brings_the_marker_back_and_inventories(driver):
    driver.create(wiki())
    driver.put_file(wiki(), "images/x.txt", b"12345")
    marker = driver.root / "wikis" / "ab" / MARKER_NAME
    marker.unlink()
    assert driver.inspect(wiki()).exists is False

    result = driver.restore(wiki())

    assert marker.is_file()
    assert result["objects"] == 2
    assert result["bytes"] == 5 + marker.stat().st_size
    assert driver.restore(wiki()) == result
    assert driver.inspect(wiki()).exists is True


def test_inspect_of_an_unknown_wiki_sees_nothing(driver):
    seen = driver.inspect(wiki())
    assert (seen.exists, seen.bytes, seen.counts) == (
        False,
        0,
        {"objects": 0, "archive_objects": 0},
    )
    assert not driver.root.joinpath("wikis", "ab").exists()  # looking creates nothing


# -- put_file ----------------------------------------------------------------------------


def test_put_file_writes_atomically_and_replaces(driver):
    driver.put_file(wiki(), "a/b/c.txt", b"one")
    driver.put_file(wiki(), "a/b/c.txt", b"two")

    folder = driver.root / "wikis" / "ab" / "a" / "b"
    assert [p.name for p in folder.iterdir()] == ["c.txt"]  # no temp file left
    assert (folder / "c.txt").read_bytes() == b"two"


@pytest.mark.parametrize(
    "bad_path",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a/",
        "",
        "a\0b",
        "a\\..\\b",
        "..",
        MARKER_NAME,
    ],
)
def test_put_file_refuses_paths_that_could_escape(driver, tmp_path, bad_path):
    with pytest.raises(PermanentError):
        driver.put_file(wiki(), bad_path, b"x")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_put_file_does_not_follow_a_symlink_out_of_the_namespace(driver, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    namespace = driver.root / "wikis" / "ab"
    namespace.mkdir(parents=True)
    (namespace / "link").symlink_to(outside)

    with pytest.raises(PermanentError, match="outside"):
        driver.put_file(wiki(), "link/sub/evil.txt", b"x")
    assert list(outside.iterdir()) == []


# -- archive files -----------------------------------------------------------------------


def test_archive_writer_and_reader_round_trip(driver):
    write_archive(driver, wiki(), "database.sql.gz", b"dump bytes")

    path = driver.root / "archives" / "ab" / ARCHIVE_ID / "database.sql.gz"
    assert path.read_bytes() == b"dump bytes"
    with driver.open_archive_reader(wiki(), ARCHIVE_ID, "database.sql.gz") as stream:
        assert stream.read() == b"dump bytes"
    assert driver.inspect(wiki()).counts["archive_objects"] == 1


def test_an_archive_writer_that_raises_publishes_nothing(driver):
    write_archive(driver, wiki(), "manifest.json", b"old")

    with pytest.raises(RuntimeError, match="disk on fire"):
        with driver.open_archive_writer(wiki(), ARCHIVE_ID, "manifest.json") as stream:
            stream.write(b"new but incomplete")
            raise RuntimeError("disk on fire")
    with pytest.raises(ValueError):
        with driver.open_archive_writer(wiki(), ARCHIVE_ID, "search.ndjson.gz") as stream:
            stream.write(b"half")
            raise ValueError

    folder = driver.root / "archives" / "ab" / ARCHIVE_ID
    assert files_under(folder) == {"manifest.json": b"old"}


def test_an_archive_file_is_invisible_until_the_writer_closes(driver):
    with driver.open_archive_writer(wiki(), ARCHIVE_ID, "database.sql.gz") as stream:
        stream.write(b"partial")
        with pytest.raises(PermanentError, match="does not exist"):
            with driver.open_archive_reader(wiki(), ARCHIVE_ID, "database.sql.gz"):
                pass
    with driver.open_archive_reader(wiki(), ARCHIVE_ID, "database.sql.gz") as stream:
        assert stream.read() == b"partial"


@pytest.mark.parametrize(
    ("archive_id", "name"),
    [
        ("../../wikis/abc", "x"),
        ("20260101T120000Z-0123abcd/..", "x"),
        (ARCHIVE_ID, "../manifest.json"),
        (ARCHIVE_ID, "a/b"),
        (ARCHIVE_ID, ".hidden"),
        (ARCHIVE_ID, ""),
    ],
)
def test_archive_names_that_could_escape_are_refused(driver, tmp_path, archive_id, name):
    with pytest.raises(PermanentError, match="breaks the rule"):
        with driver.open_archive_writer(wiki(), archive_id, name) as stream:
            stream.write(b"x")
    with pytest.raises(PermanentError, match="breaks the rule"):
        with driver.open_archive_reader(wiki(), archive_id, name):
            pass
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_reading_a_missing_archive_file_is_refused(driver):
    with pytest.raises(PermanentError, match="does not exist"):
        with driver.open_archive_reader(wiki(), ARCHIVE_ID, "manifest.json"):
            pass


# -- purge -------------------------------------------------------------------------------


def test_purge_deletes_namespace_and_archives_and_verifies(driver):
    driver.create(wiki())
    driver.put_file(wiki(), "images/one.png", b"1")
    driver.put_file(wiki(), "images/two.png", b"22")
    write_archive(driver, wiki(), "manifest.json", b"{}")
    write_archive(
        driver, wiki(), "database.sql.gz", b"dump", archive_id="20260202T000000Z-deadbeef"
    )

    result = driver.purge(wiki())

    assert result == {"objects_deleted": 3, "archive_objects_deleted": 2}
    assert not (driver.root / "wikis" / "ab").exists()
    assert not (driver.root / "archives" / "ab").exists()
    seen = driver.inspect(wiki())
    assert (seen.exists, seen.counts) == (False, {"objects": 0, "archive_objects": 0})
    assert driver.purge(wiki()) == {"objects_deleted": 0, "archive_objects_deleted": 0}


def test_purge_of_ab_leaves_abc_untouched(driver):
    for wiki_id in ("ab", "abc"):
        driver.create(wiki(wiki_id))
        driver.put_file(wiki(wiki_id), "file.txt", wiki_id.encode())
        write_archive(driver, wiki(wiki_id), "manifest.json", wiki_id.encode())
    abc_before = files_under(driver.root / "wikis" / "abc")

    driver.purge(wiki("ab"))

    assert files_under(driver.root / "wikis" / "abc") == abc_before
    assert files_under(driver.root / "archives" / "abc") == {f"{ARCHIVE_ID}/manifest.json": b"abc"}
    assert driver.inspect(wiki("abc")).counts == {"objects": 2, "archive_objects": 1}


def test_purge_never_follows_a_symlinked_namespace_out_of_the_root(driver, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_bytes(b"keep me")
    (driver.root / "wikis").mkdir(parents=True)
    (driver.root / "wikis" / "ab").symlink_to(precious)

    with pytest.raises(PermanentError, match="symbolic link"):
        driver.purge(wiki())
    assert (precious / "keep.txt").read_bytes() == b"keep me"


def test_purge_removes_symlinks_inside_the_namespace_but_not_their_targets(driver, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_bytes(b"keep me")
    driver.create(wiki())
    (driver.root / "wikis" / "ab" / "link").symlink_to(precious)

    driver.purge(wiki())

    assert not (driver.root / "wikis" / "ab").exists()
    assert (precious / "keep.txt").read_bytes() == b"keep me"


def test_a_storage_area_symlinked_out_of_the_root_is_refused(driver, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ab").mkdir(parents=True)
    (elsewhere / "ab" / "keep.txt").write_bytes(b"keep me")
    driver.root.mkdir()
    (driver.root / "archives").symlink_to(elsewhere)

    with pytest.raises(PermanentError, match="outside"):
        driver.purge(wiki())
    assert (elsewhere / "ab" / "keep.txt").read_bytes() == b"keep me"
