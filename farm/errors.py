"""Errors the services raise: each has a stable code, an HTTP status and names the field.

Views, the API and the CLI turn them into their own shape; none of them invents messages.
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule

    def as_dict(self) -> dict:
        data = {"code": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        if self.rule:
            data["rule"] = self.rule
        return data


class InvalidInput(ServiceError):
    code = "invalid"
    status = 400


class NotAllowed(ServiceError):
    code = "forbidden"
    status = 403


class WrongState(ServiceError):
    code = "wrong_state"
    status = 409

    def __init__(self, message: str, *, current_state: str, **kwargs):
        super().__init__(message, **kwargs)
        self.current_state = current_state

    def as_dict(self) -> dict:
        return {**super().as_dict(), "current_state": self.current_state}


class OperationInProgress(ServiceError):
    code = "operation_in_progress"
    status = 409


class QuotaExceeded(ServiceError):
    code = "quota_exceeded"
    status = 429


class NotFound(ServiceError):
    """Also what a caller gets for a thing that exists but is not theirs to see."""

    code = "not_found"
    status = 404
