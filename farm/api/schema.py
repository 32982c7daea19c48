"""OpenAPI details drf-spectacular cannot infer: our authentication schemes and the one
error shape every endpoint may answer with."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_STATUSES = {
    "400": "Bad input: malformed JSON, wrong types, unknown fields or a broken rule.",
    "401": "No or invalid credentials.",
    "403": "Not allowed for this user or token scope.",
    "404": "Not found, or not visible to this user.",
    "405": "Method not allowed.",
    "409": "Wrong state for this action (current_state names it) or an operation in progress.",
    "413": "Request body too large.",
    "415": "Only application/json is accepted.",
    "422": "Idempotency-Key reused with a different request.",
    "429": "Rate limit (Retry-After says when to retry) or quota reached.",
}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error has this shape.",
    "properties": {
        "code": {"type": "string", "description": "Stable, for scripts: e.g. wrong_state."},
        "message": {"type": "string", "description": "For people."},
        "field": {"type": "string"},
        "rule": {"type": "string"},
        "current_state": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["code", "message"],
}

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Repeat a POST safely: the same key and body replay the first response.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
}


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "farm.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "'Token <secret>'; create one with POST /api/v1/tokens/.",
        }


class OidcBearerScheme(OpenApiAuthenticationExtension):
    target_class = "farm.api.authentication.CachedOIDCAuthentication"
    name = "oidcBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An OIDC access token."}


def add_errors_and_strict_bodies(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the error shape on every operation,
    the Idempotency-Key header on every POST, and that request bodies allow no unknown
    fields (the write serializers reject them)."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    components["responses"] = {f"Error{code}": _error_response(code) for code in ERROR_STATUSES}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            for code in ERROR_STATUSES:
                responses.setdefault(code, {"$ref": f"#/components/responses/Error{code}"})
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
    return result


def _error_response(code: str) -> dict:
    response = {
        "description": ERROR_STATUSES[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if code == "429":
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    return response
