"""The export files through the API: what the publisher wrote, with the ETag its write
recorded, so a poller's 304 is a stat and a compare (ADR 5)."""

from __future__ import annotations

import os

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from farm import exports
from farm.api.permissions import SeesAllWikis, TokenScope
from farm.errors import NotFound


def file_response(request, relative: str, content_type: str) -> HttpResponse | FileResponse:
    """A written export file with the ETag its write recorded, or 304 when the caller holds
    it already: a stat and a compare, whatever the size of the farm."""
    path = exports.export_dir() / relative
    if relative in FARM_WIDE_FILES and not path.exists():
        exports.write_farm_files()  # a new farm, before its first publish
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"there is no export {relative}", field="path") from None
    etag = exports.file_etag(stat)
    if exports.etag_matches(request.headers.get("If-None-Match"), etag):
        response: HttpResponse | FileResponse = HttpResponse(status=304)
    else:
        sent = open(path, "rb")  # noqa: SIM115  (FileResponse closes it)
        response = FileResponse(sent, content_type=content_type)
        # The file may have been replaced since the stat: name what is being sent.
        etag = exports.file_etag(os.fstat(sent.fileno()))
    response["ETag"] = etag
    # Pollers revalidate every time: cheap, thanks to 304.
    response["Cache-Control"] = "no-cache"
    return response


FARM_WIDE_FILES = (exports.FARM_FILE, exports.SITECONFIG_FILE, exports.HOSTS_FILE)


class ExportView(APIView):
    """Exports list every wiki, so only ops and auditors (and their tokens) read them."""

    permission_classes = [IsAuthenticated, TokenScope, SeesAllWikis]


# What a poller sends and gets back; the answers an export can give besides the errors.
CONDITIONAL_HEADERS = [
    OpenApiParameter(
        "If-None-Match",
        str,
        OpenApiParameter.HEADER,
        description="The ETag of the copy you hold: answered with 304 while it is current.",
    ),
    OpenApiParameter(
        "ETag",
        str,
        OpenApiParameter.HEADER,
        response=[200, 304],
        description="Changes exactly when the export's bytes change.",
    ),
]
NOT_MODIFIED = OpenApiResponse(description="Not modified: your copy is current. No body.")


def export_schema(operation_id: str, media_type: str, body, description: str):
    return extend_schema(
        operation_id=operation_id,
        parameters=CONDITIONAL_HEADERS,
        responses={
            (200, media_type): OpenApiResponse(body, description=description),
            304: NOT_MODIFIED,
        },
    )


class FarmExportView(ExportView):
    @export_schema(
        "exports_farm",
        "application/json",
        OpenApiTypes.OBJECT,
        "Every wiki with its state, database, URL, read-only flag and effective settings.",
    )
    def get(self, request):
        return file_response(request, exports.FARM_FILE, "application/json")


class SiteConfigExportView(ExportView):
    @export_schema(
        "exports_siteconfig",
        "application/json",
        OpenApiTypes.OBJECT,
        "SiteConfiguration-shaped: settings -> {default, family, tag, wiki}.",
    )
    def get(self, request):
        return file_response(request, exports.SITECONFIG_FILE, "application/json")


class HostsExportView(ExportView):
    @export_schema(
        "exports_hosts",
        "application/json",
        OpenApiTypes.OBJECT,
        "Host -> wiki id, for the hosts that name one wiki (host routing).",
    )
    def get(self, request):
        return file_response(request, exports.HOSTS_FILE, "application/json")


class WikiExportView(ExportView):
    @export_schema(
        "exports_wiki",
        "application/json",
        OpenApiTypes.OBJECT,
        "What MediaWiki reads for one wiki: state, database, URL, read-only flag and "
        "reason, storage location and effective settings; a purged wiki's says so.",
    )
    def get(self, request, wiki_id: str):
        try:
            return file_response(request, f"{exports.WIKI_DIR}/{wiki_id}.json", "application/json")
        except NotFound:
            raise NotFound(
                f"wiki {wiki_id!r} has no export (unknown, or not yet active)", field="wiki_id"
            ) from None


class DblistIndexView(ExportView):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Each dblist's name and its number of wikis."
            )
        }
    )
    def get(self, request):
        folder = exports.export_dir() / exports.DBLIST_DIR
        if not folder.is_dir():
            exports.write_farm_files()  # a new farm, before its first publish
        counts = {
            path.stem: path.read_bytes().count(b"\n") for path in sorted(folder.glob("*.dblist"))
        }
        return Response(counts)


class DblistView(ExportView):
    @export_schema(
        "exports_dblist", "text/plain", OpenApiTypes.STR, "The list's wiki ids, one a line."
    )
    def get(self, request, name: str):
        relative = f"{exports.DBLIST_DIR}/{name}.dblist"
        try:
            return file_response(request, relative, "text/plain; charset=utf-8")
        except NotFound:
            raise NotFound(f"dblist {name!r} not found", field="name") from None
