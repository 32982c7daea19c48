"""The embedded search driver against a real shared SQLite store in tmp_path."""

from __future__ import annotations

import io
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provisioning.drivers.base import PermanentError, WikiResources
from provisioning.drivers.local_search import BATCH_SIZE, LocalSearchDriver


def wiki(wiki_id: str = "ab") -> WikiResources:
    return WikiResources(
        wiki_id=wiki_id, database_name=f"wiki_{wiki_id}", storage_prefix=f"wikis/{wiki_id}/"
    )


@pytest.fixture
def driver(tmp_path: Path) -> LocalSearchDriver:
    return LocalSearchDriver(path=tmp_path / "search" / "search.sqlite3")


def documents(wiki_id: str = "ab") -> list[dict]:
    return [
        {"index": "wikipage", "id": f"{wiki_id}-1", "source": {"title": "Main Page"}},
        {
            "index": "wikipage",
            "id": f"{wiki_id}-2",
            "source": {"title": "Quotes \"'", "text": "line\nbreak", "tags": ["ü", None]},
        },
        {"index": "specialpage", "id": f"{wiki_id}-s1", "source": {"title": "Special:Version"}},
        {"index": "repofile", "id": f"{wiki_id}-f1", "source": {"name": "Cat.png", "size": 100}},
    ]


def stored(driver: LocalSearchDriver, wiki_id: str) -> list[tuple]:
    with sqlite3.connect(driver.path) as connection:
        rows = connection.execute(
            "SELECT index_name, doc_id, source FROM documents WHERE wiki_id = ? ORDER BY 1, 2",
            (wiki_id,),
        ).fetchall()
    connection.close()
    return [(index_name, doc_id, json.loads(source)) for index_name, doc_id, source in rows]


def export(driver: LocalSearchDriver, resources: WikiResources) -> tuple[dict, bytes]:
    sink = io.BytesIO()
    return driver.archive(resources, sink), sink.getvalue()


def test_create_makes_the_shared_store_in_wal_mode(driver):
    assert driver.create(wiki()) == {"indices": ["wikipage", "specialpage", "repofile"]}
    assert driver.create(wiki()) == {"indices": ["wikipage", "specialpage", "repofile"]}

    with sqlite3.connect(driver.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT COUNT(*) FROM documents").fetchone() == (0,)
    connection.close()


def test_index_stores_documents_with_the_wiki_id_forced(driver):
    driver.create(wiki())

    assert driver.index(wiki(), documents()) == {"documents": 4}
    assert driver.index(wiki(), documents()) == {"documents": 4}  # an upsert, not a copy

    rows = stored(driver, "ab")
    assert len(rows) == 4
    assert all(source["wiki_id"] == "ab" for _, _, source in rows)
    assert ("wikipage", "ab-2", {**documents()[1]["source"], "wiki_id": "ab"}) in rows


def test_index_replaces_a_document_of_the_same_id(driver):
    driver.index(wiki(), [{"index": "wikipage", "id": "p", "source": {"title": "Old"}}])
    driver.index(wiki(), [{"index": "wikipage", "id": "p", "source": {"title": "New"}}])

    assert stored(driver, "ab") == [("wikipage", "p", {"title": "New", "wiki_id": "ab"})]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"index": "pages", "id": "1", "source": {}}, "names index 'pages'"),
        ({"index": "wikipage", "id": 1, "source": {}}, "not a string"),
        ({"index": "wikipage", "id": "1"}, "no source object"),
        ({"index": "wikipage", "id": "1", "source": {"wiki_id": "abc"}}, "belongs to wiki 'abc'"),
        (["not", "an", "object"], "not an object"),
    ],
)
def test_index_refuses_bad_documents_and_stores_none_of_the_batch(driver, document, message):
    with pytest.raises(PermanentError, match=message):
        driver.index(wiki(), [*documents(), document])
    assert stored(driver, "ab") == []


def test_two_wikis_may_use_the_same_document_id_without_touching_each_other(driver):
    driver.index(wiki("abc"), [{"index": "wikipage", "id": "shared", "source": {"t": "abc's"}}])
    driver.index(wiki("ab"), [{"index": "wikipage", "id": "shared", "source": {"t": "ab's"}}])

    assert stored(driver, "abc") == [("wikipage", "shared", {"t": "abc's", "wiki_id": "abc"})]
    assert stored(driver, "ab") == [("wikipage", "shared", {"t": "ab's", "wiki_id": "ab"})]


def test_archive_writes_ordered_ndjson_and_counts_per_index(driver):
    driver.index(wiki(), reversed(documents()))
    driver.index(wiki("abc"), documents("abc"))

    result, ndjson = export(driver, wiki())

    assert result == {
        "documents": 4,
        "per_index": {"wikipage": 2, "specialpage": 1, "repofile": 1},
    }
    lines = [json.loads(line) for line in ndjson.splitlines()]
    assert [(line["index"], line["id"]) for line in lines] == [
        ("repofile", "ab-f1"),
        ("specialpage", "ab-s1"),
        ("wikipage", "ab-1"),
        ("wikipage", "ab-2"),
    ]
    assert all(set(line) == {"index", "id", "source"} for line in lines)
    assert all(line["source"]["wiki_id"] == "ab" for line in lines)
    assert export(driver, wiki()) == (result, ndjson)


def test_archive_purge_restore_gives_back_equal_documents(driver):
    many = [
        {"index": "wikipage", "id": f"page-{n:05}", "source": {"title": f"Page {n}"}}
        for n in range(BATCH_SIZE * 2 + 7)
    ]
    driver.index(wiki(), [*documents(), *many])
    before = stored(driver, "ab")
    archived, ndjson = export(driver, wiki())

    assert driver.purge(wiki()) == {"documents_deleted": len(before)}
    assert stored(driver, "ab") == []
    assert driver.restore(wiki(), io.BytesIO(ndjson)) == {"documents": len(before)}
    assert driver.restore(wiki(), io.BytesIO(ndjson)) == {"documents": len(before)}

    assert stored(driver, "ab") == before
    assert export(driver, wiki()) == (archived, ndjson)


def test_restore_refuses_a_document_of_another_wiki(driver):
    line = json.dumps({"index": "wikipage", "id": "x", "source": {"wiki_id": "abc"}})

    with pytest.raises(PermanentError, match="belongs to wiki 'abc', not 'ab'"):
        driver.restore(wiki(), io.BytesIO(line.encode() + b"\n"))
    assert stored(driver, "ab") == stored(driver, "abc") == []


def test_restore_refuses_a_line_that_is_not_json(driver):
    good = json.dumps(documents()[0]).encode()

    with pytest.raises(PermanentError, match="line 3 is not JSON"):
        driver.restore(wiki(), io.BytesIO(good + b"\n\n{not json\n"))


def test_purge_of_ab_leaves_abc_untouched(driver):
    driver.index(wiki("ab"), documents("ab"))
    driver.index(wiki("abc"), documents("abc"))
    abc_before = stored(driver, "abc")

    assert driver.purge(wiki("ab")) == {"documents_deleted": 4}
    assert driver.purge(wiki("ab")) == {"documents_deleted": 0}

    assert stored(driver, "abc") == abc_before
    assert driver.inspect(wiki("ab")).exists is False
    assert driver.inspect(wiki("abc")).exists is True


def test_inspect_counts_per_index(driver):
    empty = driver.inspect(wiki())
    assert (empty.exists, empty.counts) == (
        False,
        {"wikipage": 0, "specialpage": 0, "repofile": 0},
    )
    driver.index(wiki(), documents())

    seen = driver.inspect(wiki())

    assert seen.exists is True
    assert seen.counts == {"wikipage": 2, "specialpage": 1, "repofile": 1}
    assert seen.bytes > 0
    assert driver.inspect(wiki()) == seen


def test_wikis_index_concurrently_through_their_own_connections(driver):
    wiki_ids = ["wa", "wb", "wc", "wd"]

    def index_many(wiki_id: str) -> dict:
        docs = [
            {"index": "wikipage", "id": f"{wiki_id}-{n}", "source": {"n": n}}
            for n in range(BATCH_SIZE * 3)
        ]
        return driver.index(wiki(wiki_id), docs)

    with ThreadPoolExecutor(max_workers=len(wiki_ids)) as pool:
        results = list(pool.map(index_many, wiki_ids))

    assert results == [{"documents": BATCH_SIZE * 3}] * len(wiki_ids)
    for wiki_id in wiki_ids:
        assert driver.inspect(wiki(wiki_id)).counts["wikipage"] == BATCH_SIZE * 3
