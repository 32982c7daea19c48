"""One JSON shape for every API error: {"code", "message", "field"?, "rule"?, "errors"?}.

Service errors already carry a stable code, an HTTP status and the field; DRF's own
exceptions (authentication, permissions, parsing, validation, throttling) are given the same
shape here, so a script needs to understand exactly one kind of error body.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from farm.errors import ServiceError

# DRF's default codes, renamed where ours read better or match the services' codes.
CODE_NAMES = {
    "not_authenticated": "not_authenticated",
    "authentication_failed": "authentication_failed",
    "permission_denied": "forbidden",
    "not_found": "not_found",
    "parse_error": "malformed_json",
    "throttled": "rate_limited",
    "invalid": "invalid",
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "body_too_large"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used for a different request."
    default_code = "idempotency_key_reused"


class IdempotencyInProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "A request with this Idempotency-Key is still being handled: retry shortly to get "
        "its answer."
    )
    default_code = "idempotency_in_progress"
    wait = 1  # DRF's handler turns this into Retry-After


class InvalidIdempotencyKey(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The Idempotency-Key header must be 1 to 128 printable ASCII characters."
    default_code = "invalid_idempotency_key"


class ScopeTooNarrow(exceptions.PermissionDenied):
    default_code = "token_scope"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: everything the API raises becomes the one error shape."""
    if isinstance(exc, ServiceError):
        return _service_error_response(exc, context)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE when DRF asks it.
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # Imported here: rest_framework.views loads this package's parsers and permissions
    # through its settings, which import this module.
    from rest_framework.views import exception_handler

    # DRF's handler adds WWW-Authenticate and Retry-After; only its body is replaced.
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a bug, left to Django's 500 handling
    # DRF answers only its own APIException (Http404 and PermissionDenied were converted).
    response.data = _drf_error_body(cast(exceptions.APIException, exc))
    return response


def _service_error_response(exc: ServiceError, context: dict[str, Any]) -> Response:
    body = exc.as_dict()
    field = _public_field_name(body.get("field"), context)
    if field:
        body["field"] = field
        body["errors"] = {field: [exc.message]}
    return Response(body, status=exc.status)


def _public_field_name(field: str | None, context: dict[str, Any]) -> str | None:
    """Services name fields by their own argument names; a view may call them otherwise."""
    aliases = getattr(context.get("view"), "service_field_aliases", {})
    return aliases.get(field, field)


def _drf_error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return _validation_error_body(exc.detail)
    code = CODE_NAMES.get(exc.default_code, exc.default_code)
    detail = exc.detail
    message = str(detail) if not isinstance(detail, dict | list) else str(exc.default_detail)
    return {"code": code, "message": message}


def _validation_error_body(detail: Any) -> dict[str, Any]:
    errors = _flatten(detail)
    field, messages = next(iter(errors.items()), ("", ["invalid input"]))
    body: dict[str, Any] = {
        "code": "invalid",
        "message": f"{field}: {messages[0]}" if field else messages[0],
    }
    if field and field != "non_field_errors":
        body["field"] = field
    body["errors"] = errors
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error details as {"owners.1": ["..."]}: one level a script can read."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and detail and all(not isinstance(d, dict | list) for d in detail):
        return {prefix or "non_field_errors": [str(d) for d in detail]}
    if isinstance(detail, list):
        flat = {}
        for index, value in enumerate(detail):
            if value:
                flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "non_field_errors": [str(detail)]}


def _is_api_request(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """handler404: a URL no route matches is still answered in the API's error shape."""
    if _is_api_request(request):
        body = {"code": "not_found", "message": "No API endpoint or object at this URL."}
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: scripts get JSON even when something broke."""
    if _is_api_request(request):
        body = {"code": "server_error", "message": "Internal error; it has been logged."}
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
