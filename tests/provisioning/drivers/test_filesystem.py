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
    """An archive file where the archive storage (provisioning/sinks.py) puts it."""
    folder = driver.root / "archives" / resources.wiki_id / archive_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


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


def test_inspect_counts_the_archive_files_apart_from_the_namespace(driver):
    driver.create(wiki())
    write_archive(driver, wiki(), "manifest.json", b"{}")
    write_archive(
        driver, wiki(), "database.sql.gz", b"dump", archive_id="20260202T000000Z-deadbeef"
    )
    write_archive(driver, wiki("abc"), "manifest.json", b"not ours")

    seen = driver.inspect(wiki())

    assert seen.counts == {"objects": 1, "archive_objects": 2}
    assert seen.details == {"archive_bytes": 6}


# -- copy_files --------------------------------------------------------------------------


def test_copy_files_copies_every_file_but_the_marker(driver):
    source, target = wiki("ab", title="Source"), wiki("cd", title="Clone")
    driver.create(source)
    driver.create(target)
    uploads = {
        "images/a/ab/Cat.png": b"\x89PNG" + bytes(range(256)) * 40,
        "images/thumb/a/ab/Cat.png/120px-Cat.png": b"thumb",
        "README": b"hello",
        "empty.txt": b"",
    }
    for relative_path, data in uploads.items():
        driver.put_file(source, relative_path, data)
    target_marker = (driver.root / "wikis" / "cd" / MARKER_NAME).read_bytes()
    source_before = files_under(driver.root / "wikis" / "ab")

    result = driver.copy_files(source, target)

    assert result == {"objects": 4, "bytes": sum(len(data) for data in uploads.values())}
    assert files_under(driver.root / "wikis" / "cd") == {**uploads, MARKER_NAME: target_marker}
    assert json.loads(target_marker)["wiki_id"] == "cd"  # the clone keeps its own marker
    assert files_under(driver.root / "wikis" / "ab") == source_before


def test_copy_files_again_overwrites_and_gives_the_same_result(driver):
    source, target = wiki("ab"), wiki("cd")
    driver.create(source)
    driver.create(target)
    driver.put_file(source, "a/page.txt", b"from the source")
    driver.put_file(target, "a/page.txt", b"stale copy in the target")
    driver.put_file(target, "only-in-target.txt", b"kept")

    first = driver.copy_files(source, target)
    again = driver.copy_files(source, target)

    assert first == again == {"objects": 1, "bytes": 15}
    copied = files_under(driver.root / "wikis" / "cd")
    assert copied["a/page.txt"] == b"from the source"
    assert copied["only-in-target.txt"] == b"kept"
    assert not [name for name in copied if name.endswith(".tmp")]


def test_copy_files_of_ab_takes_nothing_of_abc_and_touches_no_other_wiki(driver):
    for wiki_id in ("ab", "abc", "cd", "ef"):
        driver.create(wiki(wiki_id))
        driver.put_file(wiki(wiki_id), "page.txt", wiki_id.encode())
    write_archive(driver, wiki("ab"), "manifest.json", b"{}")
    before = {
        wiki_id: files_under(driver.root / "wikis" / wiki_id) for wiki_id in ("ab", "abc", "ef")
    }

    assert driver.copy_files(wiki("ab"), wiki("cd")) == {"objects": 1, "bytes": 2}

    assert files_under(driver.root / "wikis" / "cd")["page.txt"] == b"ab"
    for wiki_id, files in before.items():
        assert files_under(driver.root / "wikis" / wiki_id) == files
    assert driver.inspect(wiki("cd")).counts == {"objects": 2, "archive_objects": 0}


def test_copy_files_keeps_files_named_like_temporary_files(driver):
    # Only the driver's own half-written files (.<name>.<random>.tmp) are left behind.
    source, target = wiki("ab"), wiki("cd")
    driver.create(source)
    driver.create(target)
    driver.put_file(source, "notes.tmp", b"a wiki upload that ends in .tmp")
    namespace = driver.root / "wikis" / "ab"
    (namespace / ".page.txt.k2j3h4.tmp").write_bytes(b"half written")

    assert driver.copy_files(source, target)["objects"] == 1
    assert set(files_under(driver.root / "wikis" / "cd")) == {MARKER_NAME, "notes.tmp"}


def test_copy_files_does_not_follow_symlinks_in_the_source(driver, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "secret.txt").write_bytes(b"not the wiki's")
    source, target = wiki("ab"), wiki("cd")
    driver.create(source)
    driver.create(target)
    driver.put_file(source, "page.txt", b"ours")
    namespace = driver.root / "wikis" / "ab"
    (namespace / "linked-folder").symlink_to(precious)
    (namespace / "linked-file.txt").symlink_to(precious / "secret.txt")

    assert driver.copy_files(source, target) == {"objects": 1, "bytes": 4}
    assert set(files_under(driver.root / "wikis" / "cd")) == {MARKER_NAME, "page.txt"}


def test_copy_files_of_a_wiki_without_files_copies_nothing(driver):
    driver.create(wiki("ab"))
    driver.create(wiki("cd"))

    assert driver.copy_files(wiki("ab"), wiki("cd")) == {"objects": 0, "bytes": 0}
    assert set(files_under(driver.root / "wikis" / "cd")) == {MARKER_NAME}


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
