"""Contract tests of the OpenSearch driver at its HTTP boundary.

No OpenSearch server can run on these machines, so pytest-httpserver stands in for one:
every test lists the exact requests the driver must send (method, path, query string, body)
in order, and replays what OpenSearch 2.x answers to them, errors and partial failures
included. A request out of order, or one the script does not expect, fails the test.
The responses copy the shapes of real OpenSearch 2.x answers.
"""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import UNDEFINED

from provisioning.drivers.base import PermanentError, TransientError, WikiResources
from provisioning.drivers.opensearch import OpenSearchDriver

WIKI = WikiResources(wiki_id="alpha", database_name="wiki_alpha", storage_prefix="wikis/alpha/")
PREFIX = "farm_"
WIKI_QUERY = {"query": {"term": {"wiki_id": "alpha"}}}
SHARDS_OK = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}

EXPECTED_INDEX_BODY = {
    "mappings": {
        "dynamic": True,
        "properties": {
            "wiki_id": {"type": "keyword"},
            "title": {
                "type": "text",
                "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
            },
            "text": {"type": "text"},
            "namespace": {"type": "integer"},
            "timestamp": {"type": "date"},
        },
    }
}


# --- realistic OpenSearch 2.x answers ---------------------------------------------------


def error_body(status: int, error_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def index_not_found(name: str) -> dict[str, Any]:
    return error_body(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        index=name,
        **{"resource.id": name, "resource.type": "index_or_alias"},
        index_uuid="_na_",
    )


def already_exists(name: str) -> dict[str, Any]:
    return error_body(
        400,
        "resource_already_exists_exception",
        f"index [{name}/kRQ8ZbVbT0C6T2v5uG1bHw] already exists",
        index=name,
        index_uuid="kRQ8ZbVbT0C6T2v5uG1bHw",
    )


# OpenSearch names it rejected_execution_exception; Elasticsearch es_rejected_execution_...
REJECTED = {
    "type": "rejected_execution_exception",
    "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes="
    "105126959, replica_bytes=0, all_bytes=105126959, coordinating_operation_bytes=2597635, "
    "max_coordinating_and_primary_bytes=107374182]",
}


def field_mapping(name: str, field_type: str) -> dict[str, Any]:
    mapping = {"full_name": "wiki_id", "mapping": {"wiki_id": {"type": field_type}}}
    return {name: {"mappings": {"wiki_id": mapping}}}


def bulk_ok(index: str, doc_id: str) -> dict[str, Any]:
    return {
        "index": {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": 0,
            "_primary_term": 1,
            "status": 201,
        }
    }


def bulk_failed(index: str, doc_id: str, status: int, error: dict[str, Any]) -> dict[str, Any]:
    return {"index": {"_index": index, "_id": doc_id, "status": status, "error": error}}


def bulk_response(*items: dict[str, Any]) -> dict[str, Any]:
    errors = any("error" in next(iter(item.values())) for item in items)
    return {"took": 12, "errors": errors, "items": list(items)}


def scroll_page(scroll_id: str, total: int, hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "_scroll_id": scroll_id,
        "took": 3,
        "timed_out": False,
        "_shards": SHARDS_OK,
        "hits": {"total": {"value": total, "relation": "eq"}, "max_score": None, "hits": hits},
    }


def hit(index: str, doc_id: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"_index": index, "_id": doc_id, "_score": None, "_source": source, "sort": [0]}


def count_response(count: int) -> dict[str, Any]:
    return {"count": count, "_shards": SHARDS_OK}


def delete_by_query_response(deleted: int) -> dict[str, Any]:
    return {
        "took": 147,
        "timed_out": False,
        "total": deleted,
        "deleted": deleted,
        "batches": 1,
        "version_conflicts": 0,
        "noops": 0,
        "retries": {"bulk": 0, "search": 0},
        "throttled_millis": 0,
        "requests_per_second": -1.0,
        "throttled_until_millis": 0,
        "failures": [],
    }


# --- the scripted server --------------------------------------------------------------


class Script:
    """Lists the requests the driver must send, in order, with OpenSearch's answers."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server

    def expect(
        self,
        method: str,
        path: str,
        reply: dict[str, Any],
        *,
        status: int = 200,
        query: str | dict[str, str] = "",
        body: Any = UNDEFINED,
    ) -> None:
        self.server.expect_ordered_request(
            path, method=method, query_string=query, json=body
        ).respond_with_json(reply, status=status)

    def field_mapping(self, name: str, reply: dict[str, Any], status: int = 200) -> None:
        self.expect("GET", f"/{name}/_mapping/field/wiki_id", reply, status=status)

    def bulk(self, reply: dict[str, Any], *, status: int = 200, refresh: str | None = None):
        self.expect(
            "POST", "/_bulk", reply, status=status, query={"refresh": refresh} if refresh else ""
        )

    def count(self, name: str, reply: dict[str, Any], status: int = 200) -> None:
        self.expect("POST", f"/{name}/_count", reply, status=status, body=WIKI_QUERY)

    def delete_by_query(self, name: str, reply: dict[str, Any], status: int = 200) -> None:
        self.expect(
            "POST",
            f"/{name}/_delete_by_query",
            reply,
            status=status,
            query={"conflicts": "proceed", "refresh": "true"},
            body=WIKI_QUERY,
        )

    def start_scroll(self, name: str, reply: dict[str, Any], status: int = 200) -> None:
        body = {**WIKI_QUERY, "sort": "_doc"}
        query = {"scroll": "5m", "size": "2"}
        self.expect("POST", f"/{name}/_search", reply, status=status, query=query, body=body)

    def next_page(self, scroll_id: str, reply: dict[str, Any]) -> None:
        body = {"scroll": "5m", "scroll_id": scroll_id}
        self.expect("POST", "/_search/scroll", reply, body=body)

    def clear_scroll(self, scroll_ids: list[str]) -> None:
        reply = {"succeeded": True, "num_freed": len(scroll_ids)}
        self.expect("DELETE", "/_search/scroll", reply, body={"scroll_id": scroll_ids})

    def bulk_requests(self) -> list[list[dict[str, Any]]]:
        """The NDJSON lines of every bulk request the driver sent, parsed one by one."""
        bodies = [request.get_data(as_text=True) for request, _ in self.server.log]
        paths = [request.path for request, _ in self.server.log]
        return [
            parse_ndjson(body) for body, path in zip(bodies, paths, strict=True) if path == "/_bulk"
        ]


def parse_ndjson(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n"), "a bulk body must end with a newline"
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def script(httpserver: HTTPServer):
    script = Script(httpserver)
    yield script
    # Every scripted request was sent, and nothing else was.
    httpserver.check_assertions()
    assert not httpserver.ordered_handlers, httpserver.format_matchers()


def make_driver(server: HTTPServer, **options: Any) -> OpenSearchDriver:
    tuning = {"bulk_chunk": 2, "page_size": 2, "max_retries": 2, "retry_backoff": 0.001}
    return OpenSearchDriver(
        url=f"http://{server.host}:{server.port}",
        index_prefix=PREFIX,
        timeout=5,
        **(tuning | options),
    )


@pytest.fixture
def driver(httpserver: HTTPServer) -> OpenSearchDriver:
    return make_driver(httpserver)


def page_doc(doc_id: str, title: str, **source: Any) -> dict[str, Any]:
    return {"index": "wikipage", "id": doc_id, "source": {"title": title, "namespace": 0, **source}}


# --- create -----------------------------------------------------------------------------


def test_create_makes_missing_indices_with_a_keyword_wiki_id(script, driver):
    script.field_mapping("farm_wikipage", index_not_found("farm_wikipage"), status=404)
    script.expect(
        "PUT",
        "/farm_wikipage",
        {"acknowledged": True, "shards_acknowledged": True, "index": "farm_wikipage"},
        body=EXPECTED_INDEX_BODY,
    )
    script.field_mapping("farm_specialpage", field_mapping("farm_specialpage", "keyword"))
    script.field_mapping("farm_repofile", index_not_found("farm_repofile"), status=404)
    script.expect(
        "PUT",
        "/farm_repofile",
        {"acknowledged": True, "shards_acknowledged": True, "index": "farm_repofile"},
        body=EXPECTED_INDEX_BODY,
    )

    result = driver.create(WIKI)

    assert result == {
        "indices": ["farm_wikipage", "farm_specialpage", "farm_repofile"],
        "created": ["farm_wikipage", "farm_repofile"],
    }


def test_create_tolerates_losing_the_race_to_create_an_index(script, driver):
    script.field_mapping("farm_wikipage", index_not_found("farm_wikipage"), status=404)
    script.expect(
        "PUT",
        "/farm_wikipage",
        already_exists("farm_wikipage"),
        status=400,
        body=EXPECTED_INDEX_BODY,
    )
    script.field_mapping("farm_wikipage", field_mapping("farm_wikipage", "keyword"))
    script.field_mapping("farm_specialpage", field_mapping("farm_specialpage", "keyword"))
    script.field_mapping("farm_repofile", field_mapping("farm_repofile", "keyword"))

    assert driver.create(WIKI)["created"] == []


def test_create_refuses_an_existing_index_that_maps_wiki_id_as_text(script, driver):
    script.field_mapping("farm_wikipage", field_mapping("farm_wikipage", "text"))

    with pytest.raises(PermanentError, match="farm_wikipage exists but maps wiki_id as text"):
        driver.create(WIKI)


def test_create_reports_a_mapping_error_with_the_server_reason(script, driver):
    script.field_mapping("farm_wikipage", index_not_found("farm_wikipage"), status=404)
    reason = "Failed to parse mapping [_doc]: analyzer [wiki] has not been configured in mappings"
    script.expect(
        "PUT",
        "/farm_wikipage",
        error_body(400, "mapper_parsing_exception", reason),
        status=400,
        body=EXPECTED_INDEX_BODY,
    )

    with pytest.raises(PermanentError, match=r"400 mapper_parsing_exception: Failed to parse"):
        driver.create(WIKI)


# --- index ------------------------------------------------------------------------------


def test_index_sends_bulk_ndjson_in_chunks_pinned_to_the_wiki(script, driver):
    script.bulk(
        bulk_response(bulk_ok("farm_wikipage", "alpha:1"), bulk_ok("farm_wikipage", "alpha:2"))
    )
    script.bulk(bulk_response(bulk_ok("farm_repofile", "alpha:f1")), refresh="wait_for")
    documents = [
        page_doc("1", "Main Page", wiki_id="alpha"),
        page_doc("2", "Help", text="ünïcode"),
        {"index": "repofile", "id": "f1", "source": {"title": "Logo.png"}},
    ]

    assert driver.index(WIKI, documents) == {"documents": 3}

    first, last = script.bulk_requests()
    assert first == [
        {"index": {"_index": "farm_wikipage", "_id": "alpha:1"}},
        {"title": "Main Page", "namespace": 0, "wiki_id": "alpha"},
        {"index": {"_index": "farm_wikipage", "_id": "alpha:2"}},
        {"title": "Help", "namespace": 0, "text": "ünïcode", "wiki_id": "alpha"},
    ]
    assert last == [
        {"index": {"_index": "farm_repofile", "_id": "alpha:f1"}},
        {"title": "Logo.png", "wiki_id": "alpha"},
    ]


def test_index_of_nothing_sends_nothing(script, driver):
    assert driver.index(WIKI, []) == {"documents": 0}
    assert script.server.log == []


def test_index_retries_only_the_items_rejected_with_429(script, driver):
    script.bulk(
        bulk_response(
            bulk_ok("farm_wikipage", "alpha:1"),
            bulk_failed("farm_wikipage", "alpha:2", 429, REJECTED),
        ),
        refresh="wait_for",
    )
    script.bulk(bulk_response(bulk_ok("farm_wikipage", "alpha:2")), refresh="wait_for")

    assert driver.index(WIKI, [page_doc("1", "One"), page_doc("2", "Two")]) == {"documents": 2}

    first, retry = script.bulk_requests()
    assert len(first) == 4
    assert retry == [
        {"index": {"_index": "farm_wikipage", "_id": "alpha:2"}},
        {"title": "Two", "namespace": 0, "wiki_id": "alpha"},
    ]


def test_index_gives_up_on_items_rejected_at_every_attempt_as_transient(script, driver):
    for _ in range(3):  # the first attempt and max_retries=2 retries
        script.bulk(
            bulk_response(bulk_failed("farm_wikipage", "alpha:1", 429, REJECTED)),
            refresh="wait_for",
        )

    with pytest.raises(TransientError, match=r"rejected 1 of 1 documents for load \(429 retried 2"):
        driver.index(WIKI, [page_doc("1", "One")])


def test_index_mapping_error_on_an_item_is_permanent_and_names_the_document(script, driver):
    parse_error = {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [namespace] of type [integer] in document with id "
        "'alpha:2'. Preview of field's value: 'Main'",
        "caused_by": {"type": "number_format_exception", "reason": 'For input string: "Main"'},
    }
    script.bulk(
        bulk_response(
            bulk_ok("farm_wikipage", "alpha:1"),
            bulk_failed("farm_wikipage", "alpha:2", 400, parse_error),
        ),
        refresh="wait_for",
    )

    with pytest.raises(PermanentError) as caught:
        driver.index(WIKI, [page_doc("1", "One"), page_doc("2", "Two", namespace="Main")])

    message = str(caught.value)
    assert "refused 1 of 2 documents" in message
    assert "alpha:2 (400 mapper_parsing_exception: failed to parse field [namespace]" in message


def test_index_retries_a_whole_bulk_request_answered_429(script, driver):
    script.bulk(
        error_body(429, REJECTED["type"], REJECTED["reason"]), status=429, refresh="wait_for"
    )
    script.bulk(bulk_response(bulk_ok("farm_wikipage", "alpha:1")), refresh="wait_for")

    assert driver.index(WIKI, [page_doc("1", "One")]) == {"documents": 1}

    first, retry = script.bulk_requests()
    assert first == retry


def test_index_gives_up_on_an_unavailable_cluster_as_transient(script, driver):
    unavailable = error_body(
        503,
        "cluster_block_exception",
        "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
    )
    for _ in range(3):
        script.bulk(unavailable, status=503, refresh="wait_for")

    with pytest.raises(TransientError, match="503 cluster_block_exception"):
        driver.index(WIKI, [page_doc("1", "One")])


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (page_doc("1", "Theirs", wiki_id="beta"), "belongs to wiki 'beta', not 'alpha'"),
        ({"index": "users", "id": "1", "source": {}}, "names index 'users'"),
        ({"index": "wikipage", "id": 7, "source": {}}, "is not a non-empty string"),
        ({"index": "wikipage", "id": "1", "source": "text"}, "has no source object"),
    ],
)
def test_index_refuses_a_document_it_may_not_write_and_sends_nothing(
    script, driver, document, complaint
):
    with pytest.raises(PermanentError, match=complaint):
        driver.index(WIKI, [page_doc("0", "Ours"), document])
    assert script.server.log == []


# --- archive and restore ----------------------------------------------------------------

PAGES = [
    hit("farm_wikipage", f"alpha:{n}", {"title": f"Page {n}", "namespace": 0, "wiki_id": "alpha"})
    for n in range(1, 6)
]
FILE = hit("farm_repofile", "alpha:f1", {"title": "Logo.png", "wiki_id": "alpha"})


def script_export(script: Script) -> None:
    """wikipage over three full pages and an empty one, specialpage missing, repofile one.

    Each index is counted first; an index without documents of the wiki is not scrolled.
    """
    script.count("farm_wikipage", count_response(5))
    script.start_scroll("farm_wikipage", scroll_page("scroll-a1", 5, PAGES[0:2]))
    script.next_page("scroll-a1", scroll_page("scroll-a2", 5, PAGES[2:4]))
    script.next_page("scroll-a2", scroll_page("scroll-a3", 5, PAGES[4:5]))
    script.next_page("scroll-a3", scroll_page("scroll-a3", 5, []))
    script.clear_scroll(["scroll-a3"])  # the latest id names the scroll
    script.count("farm_specialpage", index_not_found("farm_specialpage"), status=404)
    script.count("farm_repofile", count_response(1))
    script.start_scroll("farm_repofile", scroll_page("scroll-b1", 1, [FILE]))
    script.next_page("scroll-b1", scroll_page("scroll-b1", 1, []))
    script.clear_scroll(["scroll-b1"])


def test_archive_scrolls_every_index_and_clears_the_scrolls(script, driver):
    script_export(script)
    sink = io.BytesIO()

    result = driver.archive(WIKI, sink)

    assert result == {"documents": 6, "per_index": {"wikipage": 5, "specialpage": 0, "repofile": 1}}
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert lines[0] == {
        "index": "wikipage",
        "id": "1",
        "source": {"title": "Page 1", "namespace": 0, "wiki_id": "alpha"},
    }
    assert [line["id"] for line in lines] == ["1", "2", "3", "4", "5", "f1"]
    assert lines[-1]["index"] == "repofile"


def test_restore_indexes_again_exactly_what_archive_exported(script, httpserver):
    driver = make_driver(httpserver, bulk_chunk=4)
    script_export(script)
    script.bulk(bulk_response(*(bulk_ok(h["_index"], h["_id"]) for h in PAGES[:4])))
    script.bulk(
        bulk_response(*(bulk_ok(h["_index"], h["_id"]) for h in [PAGES[4], FILE])),
        refresh="wait_for",
    )
    export = io.BytesIO()
    driver.archive(WIKI, export)
    export.seek(0)

    assert driver.restore(WIKI, export) == {"documents": 6}

    lines = [line for request in script.bulk_requests() for line in request]
    actions, sources = lines[0::2], lines[1::2]
    assert [a["index"] for a in actions] == [
        {"_index": h["_index"], "_id": h["_id"]} for h in PAGES + [FILE]
    ]
    assert sources == [h["_source"] for h in PAGES + [FILE]]


def test_archive_with_failed_shards_is_transient_and_still_clears_the_scroll(script, driver):
    partial = scroll_page("scroll-a1", 5, PAGES[0:2])
    partial["_shards"] = {
        "total": 2,
        "successful": 1,
        "skipped": 0,
        "failed": 1,
        "failures": [
            {
                "shard": 1,
                "index": "farm_wikipage",
                "node": "N1aBcD",
                "reason": {
                    "type": "node_not_connected_exception",
                    "reason": "[node-2] Node not connected",
                },
            }
        ],
    }
    script.count("farm_wikipage", count_response(5))
    script.start_scroll("farm_wikipage", partial)
    script.clear_scroll(["scroll-a1"])

    with pytest.raises(TransientError, match=r"succeeded on 1 \(\+0 skipped\) shards out of 2"):
        driver.archive(WIKI, io.BytesIO())


def test_archive_with_an_expired_scroll_is_transient(script, driver):
    script.count("farm_wikipage", count_response(5))
    script.start_scroll("farm_wikipage", scroll_page("scroll-a1", 5, PAGES[0:2]))
    missing = error_body(
        404, "search_context_missing_exception", "No search context found for id [91]"
    )
    script.expect("POST", "/_search/scroll", missing, status=404)
    script.clear_scroll(["scroll-a1"])

    with pytest.raises(TransientError, match="search_context_missing_exception"):
        driver.archive(WIKI, io.BytesIO())


def test_archive_that_misses_documents_is_transient(script, driver):
    script.count("farm_wikipage", count_response(3))
    script.start_scroll("farm_wikipage", scroll_page("scroll-a1", 3, PAGES[0:2]))
    script.next_page("scroll-a1", scroll_page("scroll-a1", 3, []))
    script.clear_scroll(["scroll-a1"])

    with pytest.raises(TransientError, match="exported 2 of 3 documents"):
        driver.archive(WIKI, io.BytesIO())


# --- purge and inspect ------------------------------------------------------------------


def test_purge_deletes_the_wiki_documents_and_verifies_none_remain(script, driver):
    script.delete_by_query("farm_wikipage", delete_by_query_response(5))
    script.delete_by_query("farm_specialpage", index_not_found("farm_specialpage"), status=404)
    script.delete_by_query("farm_repofile", delete_by_query_response(1))
    script.count("farm_wikipage", count_response(0))
    script.count("farm_specialpage", index_not_found("farm_specialpage"), status=404)
    script.count("farm_repofile", count_response(0))

    assert driver.purge(WIKI) == {"documents_deleted": 6}


def test_purge_deletes_again_documents_that_arrived_meanwhile(script, driver):
    for deleted, remaining in [(5, 2), (2, 0)]:
        script.delete_by_query("farm_wikipage", delete_by_query_response(deleted))
        script.delete_by_query("farm_specialpage", delete_by_query_response(0))
        script.delete_by_query("farm_repofile", delete_by_query_response(0))
        script.count("farm_wikipage", count_response(remaining))
        script.count("farm_specialpage", count_response(0))
        script.count("farm_repofile", count_response(0))

    assert driver.purge(WIKI) == {"documents_deleted": 7}


def test_purge_fails_when_documents_keep_remaining(script, httpserver):
    driver = make_driver(httpserver, max_retries=1)
    for _ in range(2):
        script.delete_by_query("farm_wikipage", delete_by_query_response(3))
        script.delete_by_query("farm_specialpage", delete_by_query_response(0))
        script.delete_by_query("farm_repofile", delete_by_query_response(0))
        script.count("farm_wikipage", count_response(3))
        script.count("farm_specialpage", count_response(0))
        script.count("farm_repofile", count_response(0))

    with pytest.raises(PermanentError, match=r"remain after 2 deletions: \{'wikipage': 3"):
        driver.purge(WIKI)


def test_purge_with_rejected_deletions_is_transient(script, driver):
    rejected = delete_by_query_response(1)
    rejected["failures"] = [
        {"index": "farm_wikipage", "id": "alpha:2", "cause": REJECTED, "status": 429}
    ]
    script.delete_by_query("farm_wikipage", rejected)

    with pytest.raises(TransientError, match="1 failures"):
        driver.purge(WIKI)


def test_inspect_counts_the_wiki_documents_per_index(script, driver):
    script.count("farm_wikipage", count_response(5))
    script.count("farm_specialpage", index_not_found("farm_specialpage"), status=404)
    script.count("farm_repofile", count_response(1))

    inspection = driver.inspect(WIKI)

    assert inspection.exists
    assert inspection.counts == {"wikipage": 5, "specialpage": 0, "repofile": 1}


def test_inspect_of_a_wiki_without_documents(script, driver):
    for name in ("farm_wikipage", "farm_specialpage", "farm_repofile"):
        script.count(name, index_not_found(name), status=404)

    assert driver.inspect(WIKI).as_dict() == {
        "exists": False,
        "bytes": 0,
        "counts": {"wikipage": 0, "specialpage": 0, "repofile": 0},
    }


def test_a_refused_request_is_permanent_with_the_server_reason(script, driver):
    reason = "no permissions for [indices:data/read/search] and User [name=portal]"
    script.count("farm_wikipage", error_body(403, "security_exception", reason), status=403)

    with pytest.raises(PermanentError, match=r"403 security_exception: no permissions"):
        driver.inspect(WIKI)


def test_a_throttled_request_is_transient_without_an_immediate_retry(script, driver):
    # The client retries at once; a throttled cluster waits for the engine's backoff instead.
    throttled = error_body(429, REJECTED["type"], REJECTED["reason"])
    script.count("farm_wikipage", throttled, status=429)

    with pytest.raises(TransientError, match="429 rejected_execution_exception"):
        driver.inspect(WIKI)


def test_a_bad_gateway_is_retried_by_the_client(script, driver):
    bad_gateway = error_body(502, "bad_gateway", "upstream node restarting")
    script.count("farm_wikipage", bad_gateway, status=502)
    script.count("farm_wikipage", count_response(5))
    script.count("farm_specialpage", count_response(0))
    script.count("farm_repofile", count_response(0))

    assert driver.inspect(WIKI).counts == {"wikipage": 5, "specialpage": 0, "repofile": 0}


# --- connection and configuration -------------------------------------------------------


def test_connection_refused_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    driver = OpenSearchDriver(
        url=f"http://127.0.0.1:{closed_port}", max_retries=1, retry_backoff=0.001, timeout=2
    )

    with pytest.raises(TransientError, match="cannot reach OpenSearch"):
        driver.inspect(WIKI)


@pytest.mark.parametrize("prefix", ["Farm_", "_farm", "farm/", "a" * 42])
def test_a_bad_index_prefix_is_refused(prefix):
    with pytest.raises(PermanentError, match="index prefix"):
        OpenSearchDriver(url="http://127.0.0.1:9200", index_prefix=prefix)
