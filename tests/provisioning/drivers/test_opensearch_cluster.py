"""The OpenSearch driver against a real cluster: opt-in, when OPENSEARCH_URL is set.

No OpenSearch or Elasticsearch server can run on the project's machines (CI included), so
these tests skip when OPENSEARCH_URL is unset even under CI=true, unlike the other service
tests: failing CI for a server it can never have would only teach people to ignore CI. The
contract tests (test_opensearch_contract.py) cover the driver's requests on every run; this
suite checks the same behaviour end to end, e.g. against compose.yaml's cluster:

    OPENSEARCH_URL=http://127.0.0.1:9200 .venv/bin/pytest -m opensearch

Every test works in indices of its own random prefix and deletes them afterwards by name.
"""

from __future__ import annotations

import io
import json
import os
import uuid

import pytest
from opensearchpy import OpenSearch

from provisioning.drivers.base import PermanentError, WikiResources
from provisioning.drivers.opensearch import OpenSearchDriver

pytestmark = pytest.mark.opensearch

OPENSEARCH_URL = os.environ.get("OPENSEARCH_URL", "")
ALPHA = WikiResources(wiki_id="alpha", database_name="wiki_alpha", storage_prefix="wikis/alpha/")
BETA = WikiResources(wiki_id="beta", database_name="wiki_beta", storage_prefix="wikis/beta/")


@pytest.fixture
def prefix():
    if not OPENSEARCH_URL:
        pytest.skip("OPENSEARCH_URL is not set; no OpenSearch cluster can run on this machine")
    prefix = f"test{uuid.uuid4().hex[:10]}_"
    yield prefix
    client = OpenSearch(hosts=[OPENSEARCH_URL])
    names = ",".join(f"{prefix}{base}" for base in OpenSearchDriver.indices)
    client.indices.delete(index=names, ignore_unavailable=True)


@pytest.fixture
def driver(prefix):
    return OpenSearchDriver(
        url=OPENSEARCH_URL, index_prefix=prefix, bulk_chunk=4, page_size=3, retry_backoff=0.1
    )


def pages(wiki_id: str, count: int) -> list[dict]:
    return [
        {
            "index": "wikipage",
            "id": str(n),
            "source": {"title": f"{wiki_id} page {n}", "namespace": 0, "text": "hello"},
        }
        for n in range(count)
    ]


def export_of(driver: OpenSearchDriver, wiki: WikiResources) -> list[dict]:
    sink = io.BytesIO()
    driver.archive(wiki, sink)
    return sorted((json.loads(line) for line in sink.getvalue().splitlines()), key=str)


def test_create_is_idempotent_and_maps_wiki_id_as_keyword(driver, prefix):
    first = driver.create(ALPHA)
    second = driver.create(BETA)

    assert (
        first["created"]
        == first["indices"]
        == [f"{prefix}wikipage", f"{prefix}specialpage", f"{prefix}repofile"]
    )
    assert second["created"] == []
    mapping = OpenSearch(hosts=[OPENSEARCH_URL]).indices.get_mapping(index=f"{prefix}wikipage")
    assert mapping[f"{prefix}wikipage"]["mappings"]["properties"]["wiki_id"] == {"type": "keyword"}


def test_inspect_before_create_sees_nothing(driver):
    inspection = driver.inspect(ALPHA)

    assert not inspection.exists
    assert inspection.counts == {"wikipage": 0, "specialpage": 0, "repofile": 0}


def test_wikis_sharing_document_ids_stay_apart_through_archive_purge_restore(driver):
    driver.create(ALPHA)
    driver.index(ALPHA, pages("alpha", 10))
    driver.index(BETA, [*pages("beta", 4), {"index": "repofile", "id": "f", "source": {}}])
    assert driver.inspect(ALPHA).counts == {"wikipage": 10, "specialpage": 0, "repofile": 0}

    exported = export_of(driver, ALPHA)
    assert len(exported) == 10
    assert {line["id"] for line in exported} == {str(n) for n in range(10)}
    assert all(line["source"]["wiki_id"] == "alpha" for line in exported)

    assert driver.purge(ALPHA) == {"documents_deleted": 10}
    assert not driver.inspect(ALPHA).exists
    assert driver.inspect(BETA).counts == {"wikipage": 4, "specialpage": 0, "repofile": 1}

    export = io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in exported))
    assert driver.restore(ALPHA, export) == {"documents": 10}
    assert export_of(driver, ALPHA) == exported
    assert driver.purge(ALPHA) == {"documents_deleted": 10}
    assert driver.purge(ALPHA) == {"documents_deleted": 0}


def test_a_document_the_mapping_refuses_fails_the_operation(driver):
    driver.create(ALPHA)
    bad = {"index": "wikipage", "id": "x", "source": {"title": "Bad", "namespace": "Main"}}

    with pytest.raises(PermanentError, match="mapper_parsing_exception"):
        driver.index(ALPHA, [*pages("alpha", 2), bad])
