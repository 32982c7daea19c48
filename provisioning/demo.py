"""Demo content for a wiki: generated search documents (what a real wiki's search would hold)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from farm.models import Wiki
from provisioning.drivers import search_driver
from provisioning.steps import wiki_resources


def demo_documents(wiki_id: str, pages: int) -> Iterator[dict[str, Any]]:
    for page_id in range(1, pages + 1):
        yield {
            "index": "wikipage",
            "id": f"{wiki_id}-{page_id}",
            "source": {
                "wiki_id": wiki_id,
                "title": f"Demo page {page_id}",
                "namespace": 0,
                "text": f"Demo page {page_id} of {wiki_id}. " * 20,
                "timestamp": "2026-01-01T00:00:00Z",
            },
        }


def index_demo_pages(wiki: Wiki, *, pages: int) -> dict[str, Any]:
    return search_driver().index(wiki_resources(wiki), demo_documents(wiki.id, pages))
