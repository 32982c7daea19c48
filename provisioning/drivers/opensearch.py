"""Search on OpenSearch: every wiki's documents in three shared indices, told apart by wiki_id.

Document ids: the shared indices hold every wiki, so two wikis may both have a document "1"
in `wikipage`. OpenSearch's `_id` is therefore `<wiki_id>:<id>`, and exports give back the
plain id, so that one wiki can never overwrite another's document and an export looks the
same as the local driver's.

Export uses `helpers.scan` (a scroll sorted by `_doc`), not point-in-time + search_after:
on OpenSearch 2.x (before 3.3) a PIT has no `_shard_doc` tiebreaker, so search_after would
need a unique sort key, and the only one every document has is `_id`, which OpenSearch
sorts through fielddata on the heap. A scroll sorted by `_doc` is a consistent snapshot in
the cheapest order and works on every OpenSearch (and Elasticsearch) version. The wiki's
documents are counted first: a retried scroll page can be skipped, so an export that
writes fewer documents than the count is incomplete.

Retries: the client retries a request that could not connect, timed out or was answered
502/503/504 (a sick gateway or node), `max_retries` times. It retries at once, without a
pause, so 429 is not among them: that would only hammer a throttled cluster. Bulk requests
and bulk items answered 429 are retried by `helpers.streaming_bulk`, with exponential
backoff. What still fails then is a TransientError and the engine's own backoff takes over.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import Any, BinaryIO, NamedTuple, TypeVar, cast

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as ClientConnectionError
from opensearchpy.exceptions import OpenSearchException, TransportError

from provisioning.drivers.base import (
    Inspection,
    PermanentError,
    SearchDriver,
    TransientError,
    WikiResources,
    iter_ndjson,
)

INDEX_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
# Whole requests answered with these are worth retrying: throttling and a sick gateway/node.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# The client retries these at once; 429 waits for streaming_bulk's backoff or the engine's.
CLIENT_RETRY_STATUSES = (502, 503, 504)
# Bulk items with these were rejected (queue full, shard unavailable), not refused.
RETRYABLE_ITEM_STATUSES = frozenset({429, 503})
SCROLL_KEEP_ALIVE = "5m"
MAX_ID_BYTES = 512  # OpenSearch refuses longer _id values
FAILURES_SHOWN = 5
MAX_PAUSE_SECONDS = 30

INDEX_BODY = {
    "mappings": {
        # Other fields a wiki sends are mapped as they come; these must not be guessed.
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

T = TypeVar("T")


class OpenSearchRefusal(PermanentError):
    """OpenSearch answered with an error retrying will not fix; keeps its status and type."""

    def __init__(self, message: str, *, status: Any, error_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    @property
    def index_missing(self) -> bool:
        return self.error_type == "index_not_found_exception"


class BulkItem(NamedTuple):
    index_name: str
    doc_id: str  # the OpenSearch _id, wiki-qualified
    source: dict[str, Any]


class OpenSearchDriver(SearchDriver):
    """The shared indices `<prefix>wikipage`, `<prefix>specialpage`, `<prefix>repofile`."""

    def __init__(
        self,
        *,
        url: str,
        index_prefix: str = "",
        bulk_chunk: int = 500,
        page_size: int = 1000,
        max_retries: int = 5,
        timeout: float = 30.0,
        retry_backoff: float = 0.5,
    ) -> None:
        if index_prefix and not INDEX_PREFIX_RE.fullmatch(index_prefix):
            raise PermanentError(
                f"index prefix {index_prefix!r} breaks the rule {INDEX_PREFIX_RE.pattern}"
            )
        if not url.startswith(("http://", "https://")):
            raise PermanentError("OpenSearch url must start with http:// or https://")
        if bulk_chunk < 1 or page_size < 1 or max_retries < 0:
            raise PermanentError("bulk_chunk and page_size must be >= 1, max_retries >= 0")
        self.index_prefix = index_prefix
        self.bulk_chunk = bulk_chunk
        self.page_size = page_size
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self._client = OpenSearch(
            hosts=[url],
            timeout=timeout,
            max_retries=max_retries,
            retry_on_timeout=True,
            retry_on_status=CLIENT_RETRY_STATUSES,
        )

    def index_name(self, base: str) -> str:
        return f"{self.index_prefix}{base}"

    # --- the driver contract ------------------------------------------------------------

    def create(self, wiki: WikiResources) -> dict[str, Any]:
        names = [self.index_name(base) for base in self.indices]
        created = [name for name in names if self._ensure_index(name)]
        return {"indices": names, "created": created}

    def index(self, wiki: WikiResources, documents: Iterable[dict[str, Any]]) -> dict[str, Any]:
        items = (self._bulk_item(wiki, document) for document in documents)
        indexed = 0
        for chunk, is_last in _with_last_flag(_chunks(items, self.bulk_chunk)):
            # Waiting for the refresh on the last chunk makes counts right on return
            # without forcing a refresh of the shared indices after every chunk.
            self._bulk(chunk, refresh="wait_for" if is_last else None)
            indexed += len(chunk)
        return {"documents": indexed}

    def archive(self, wiki: WikiResources, sink: BinaryIO) -> dict[str, Any]:
        per_index = {base: self._export_index(wiki, base, sink) for base in self.indices}
        return {"documents": sum(per_index.values()), "per_index": per_index}

    def restore(self, wiki: WikiResources, source: BinaryIO) -> dict[str, Any]:
        return self.index(wiki, iter_ndjson(source))

    def purge(self, wiki: WikiResources) -> dict[str, Any]:
        deleted = 0
        for attempt in itertools.count():
            deleted += sum(self._delete_wiki_documents(wiki, base) for base in self.indices)
            remaining = self._counts(wiki)
            if not any(remaining.values()):
                return {"documents_deleted": deleted}
            if attempt >= self.max_retries:
                raise PermanentError(
                    f"documents of wiki {wiki.wiki_id} remain after {attempt + 1} deletions: "
                    f"{remaining}; is something still indexing this wiki?"
                )
            # Documents indexed while we deleted (a late writer): delete again shortly.
            self._pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def inspect(self, wiki: WikiResources) -> Inspection:
        counts = self._counts(wiki)
        return Inspection(exists=sum(counts.values()) > 0, counts=counts)

    # --- indices ------------------------------------------------------------------------

    def _ensure_index(self, name: str) -> bool:
        """Create the index if it is missing; True when this call created it."""
        try:
            field_type = self._wiki_id_field_type(name)
        except OpenSearchRefusal as exc:
            if not exc.index_missing:
                raise
            if self._create_index(name):
                return True
            field_type = self._wiki_id_field_type(name)  # someone else created it meanwhile
        if field_type != "keyword":
            raise PermanentError(
                f"index {name} exists but maps wiki_id as {field_type or 'nothing'}, "
                "not keyword: term queries on wiki_id would not isolate wikis"
            )
        return False

    def _wiki_id_field_type(self, name: str) -> str | None:
        """The type of wiki_id in the index (or in every index behind an alias), or None."""
        response = self._call(
            f"read the wiki_id mapping of {name}",
            self._client.indices.get_field_mapping,
            fields="wiki_id",
            index=name,
        )
        types = {_wiki_id_type(concrete) for concrete in response.values()}
        return types.pop() if len(types) == 1 else None

    def _create_index(self, name: str) -> bool:
        """Create the index; False when another worker won the race to create it."""
        try:
            self._call(
                f"create index {name}", self._client.indices.create, index=name, body=INDEX_BODY
            )
        except OpenSearchRefusal as exc:
            if exc.error_type == "resource_already_exists_exception":
                return False
            raise
        return True

    # --- indexing -----------------------------------------------------------------------

    def _bulk_item(self, wiki: WikiResources, document: Any) -> BulkItem:
        """Check one document of the shared shape and pin it to this wiki."""
        if not isinstance(document, dict):
            raise PermanentError(f"search document is not an object: {document!r:.80}")
        doc_id, base, source = document.get("id"), document.get("index"), document.get("source")
        if not isinstance(doc_id, str) or not doc_id:
            raise PermanentError(f"search document id {doc_id!r:.80} is not a non-empty string")
        if base not in self.indices:
            raise PermanentError(
                f"search document {doc_id!r} names index {base!r}, not one of {self.indices}"
            )
        if not isinstance(source, dict):
            raise PermanentError(f"search document {doc_id!r} has no source object")
        owner = source.get("wiki_id", wiki.wiki_id)
        if owner != wiki.wiki_id:
            raise PermanentError(
                f"search document {doc_id!r} belongs to wiki {owner!r}, not {wiki.wiki_id!r}"
            )
        qualified_id = f"{wiki.wiki_id}:{doc_id}"
        if len(qualified_id.encode()) > MAX_ID_BYTES:
            raise PermanentError(f"search document id {doc_id[:80]!r}... is too long")
        return BulkItem(self.index_name(base), qualified_id, {**source, "wiki_id": wiki.wiki_id})

    def _bulk(self, items: list[BulkItem], *, refresh: str | None) -> None:
        """Send one chunk; streaming_bulk retries the items OpenSearch rejected with 429."""
        try:
            failures = [
                next(iter(result.values()))
                for _ok, result in helpers.streaming_bulk(
                    self._client,
                    items,
                    chunk_size=len(items),
                    expand_action_callback=_bulk_lines,
                    raise_on_error=False,  # report failed items instead of stopping at one
                    yield_ok=False,
                    max_retries=self.max_retries,
                    # Both annotated int; they go to time.sleep, which takes a float.
                    initial_backoff=cast(int, self.retry_backoff),
                    max_backoff=MAX_PAUSE_SECONDS,
                    refresh=refresh,  # None: not sent
                )
            ]
        except OpenSearchException as exc:
            raise _driver_error("bulk index", exc) from exc
        refused = [item for item in failures if item.get("status") not in RETRYABLE_ITEM_STATUSES]
        if refused:
            raise PermanentError(
                f"OpenSearch refused {len(refused)} of {len(items)} documents: "
                + _describe_failures(refused)
            )
        if failures:
            raise TransientError(
                f"OpenSearch rejected {len(failures)} of {len(items)} documents for load "
                f"(429 retried {self.max_retries} times): " + _describe_failures(failures)
            )

    # --- export -------------------------------------------------------------------------

    def _export_index(self, wiki: WikiResources, base: str, sink: BinaryIO) -> int:
        """Stream one index's documents of the wiki to `sink`; return how many."""
        expected = self._count(wiki, base)  # 0 also when the index is missing
        if not expected:
            return 0
        name = self.index_name(base)
        action = f"export {name}"
        hits = helpers.scan(
            self._client,
            query={"query": _wiki_query(wiki)},
            index=name,
            scroll=SCROLL_KEEP_ALIVE,
            size=self.page_size,
        )
        exported = 0
        try:
            with closing(hits):  # scan clears its scroll on close, also when writing fails
                for hit in hits:
                    sink.write(_export_line(wiki, base, hit))
                    exported += 1
        except helpers.ScanError as exc:
            raise TransientError(f"{action}: partial answer: {exc.args[0]}") from exc
        except OpenSearchException as exc:
            error = _driver_error(action, exc)
            # The scroll expired or its node restarted: a fresh export may well succeed.
            if (
                isinstance(error, OpenSearchRefusal)
                and error.error_type == "search_context_missing_exception"
            ):
                raise TransientError(str(error)) from exc
            raise error from exc
        if exported != expected:
            raise TransientError(f"{action}: exported {exported} of {expected} documents")
        return exported

    # --- purge and counts ---------------------------------------------------------------

    def _delete_wiki_documents(self, wiki: WikiResources, base: str) -> int:
        name = self.index_name(base)
        action = f"delete wiki {wiki.wiki_id} from {name}"
        try:
            response = self._call(
                action,
                self._client.delete_by_query,
                index=name,
                body={"query": _wiki_query(wiki)},
                # proceed: a document changed meanwhile is retried by the verify pass,
                # refresh: the verifying _count must see the deletions.
                params={"conflicts": "proceed", "refresh": "true"},
            )
        except OpenSearchRefusal as exc:
            if exc.index_missing:
                return 0
            raise
        failures = response.get("failures") or []
        if response.get("timed_out") or failures:
            raise _delete_failure(action, response, failures)
        return int(response.get("deleted", 0))

    def _counts(self, wiki: WikiResources) -> dict[str, int]:
        return {base: self._count(wiki, base) for base in self.indices}

    def _count(self, wiki: WikiResources, base: str) -> int:
        name = self.index_name(base)
        action = f"count wiki {wiki.wiki_id} in {name}"
        try:
            response = self._call(
                action, self._client.count, index=name, body={"query": _wiki_query(wiki)}
            )
        except OpenSearchRefusal as exc:
            if exc.index_missing:
                return 0
            raise
        _check_shards(action, response)
        return int(response["count"])

    # --- requests -----------------------------------------------------------------------

    def _call(self, action: str, method: Callable[..., T], **kwargs: Any) -> T:
        """Run one client call (the client retries); map its failure to the driver contract."""
        try:
            return method(**kwargs)
        except OpenSearchException as exc:
            raise _driver_error(action, exc) from exc

    def _pause(self, attempt: int) -> None:
        delay = min(MAX_PAUSE_SECONDS, self.retry_backoff * 2**attempt)
        # Jitter keeps workers that were throttled together from retrying together.
        time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (not cryptography)


def _wiki_query(wiki: WikiResources) -> dict[str, Any]:
    return {"term": {"wiki_id": wiki.wiki_id}}


def _wiki_id_type(index_mapping: dict[str, Any]) -> str | None:
    """Read {"mappings": {"wiki_id": {"mapping": {"wiki_id": {"type": ...}}}}}."""
    field = index_mapping.get("mappings", {}).get("wiki_id", {})
    return field.get("mapping", {}).get("wiki_id", {}).get("type")


def _driver_error(action: str, exc: OpenSearchException) -> PermanentError | TransientError:
    """Map a client exception to the driver contract, keeping the server's reason."""
    if isinstance(exc, ClientConnectionError):  # also timeouts: the server may be busy
        return TransientError(f"{action}: cannot reach OpenSearch: {exc.info}")
    if not isinstance(exc, TransportError):  # e.g. a document that cannot be serialised
        return PermanentError(f"{action}: {exc}")
    error_type, reason = _server_reason(exc)
    message = f"{action}: OpenSearch answered {exc.status_code} {error_type}: {reason}"
    if exc.status_code in RETRYABLE_STATUSES:
        return TransientError(message)
    return OpenSearchRefusal(message, status=exc.status_code, error_type=error_type)


def _server_reason(exc: TransportError) -> tuple[str, str]:
    info = exc.info
    error = info.get("error") if isinstance(info, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", exc.error)), str(error.get("reason", ""))
    return str(exc.error), str(error or info or "")


def _check_shards(action: str, response: dict[str, Any]) -> None:
    """A response some shards failed to answer is partial: try again later."""
    shards = response.get("_shards", {})
    if response.get("timed_out") or shards.get("failed", 0):
        failures = shards.get("failures", [])[:FAILURES_SHOWN]
        reasons = "; ".join(str(failure.get("reason", failure)) for failure in failures)
        raise TransientError(
            f"{action}: partial answer ({shards.get('failed', 0)} of "
            f"{shards.get('total', '?')} shards failed, timed_out={response.get('timed_out')})"
            + (f": {reasons}" if reasons else "")
        )


def _export_line(wiki: WikiResources, base: str, hit: dict[str, Any]) -> bytes:
    wiki_prefix = f"{wiki.wiki_id}:"
    doc_id = hit["_id"]
    # Documents written by something else than this driver keep their id as it is.
    doc_id = doc_id.removeprefix(wiki_prefix)
    line = {"index": base, "id": doc_id, "source": hit["_source"]}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _bulk_lines(item: BulkItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """streaming_bulk's action and source lines for one item."""
    return {"index": {"_index": item.index_name, "_id": item.doc_id}}, item.source


def _describe_failures(failures: list[dict[str, Any]]) -> str:
    shown = []
    for outcome in failures[:FAILURES_SHOWN]:
        error = outcome.get("error") or {}
        reason = error.get("reason", error) if isinstance(error, dict) else error
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        shown.append(f"{outcome.get('_id')} ({outcome.get('status')} {kind}: {reason})")
    more = len(failures) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _delete_failure(
    action: str, response: dict[str, Any], failures: list[dict[str, Any]]
) -> PermanentError | TransientError:
    """Rejected or timed out deletions are worth another pass; refusals are not."""
    statuses = {failure.get("status") for failure in failures}
    message = (
        f"{action}: deleted {response.get('deleted', 0)}, timed_out={response.get('timed_out')}, "
        f"{len(failures)} failures: {failures[:FAILURES_SHOWN]}"
    )
    if statuses <= RETRYABLE_STATUSES | {None}:  # None: a shard failure, not a refusal
        return TransientError(message)
    return PermanentError(message)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _with_last_flag(chunks: Iterator[list[T]]) -> Iterator[tuple[list[T], bool]]:
    """Pair each chunk with whether it is the last, reading one chunk ahead."""
    current = next(chunks, None)
    while current is not None:
        following = next(chunks, None)
        yield current, following is None
        current = following
