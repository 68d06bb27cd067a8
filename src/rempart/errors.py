"""One exception tree for all of Rempart.

Every error a caller can see is a :class:`RempartError` with a stable machine
``code`` (used in RFC 9457 problem details and by the CLI) and a message that
says what was wrong. Third-party errors are translated at the boundary with
``raise ... from exc``; nothing else leaks out.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuditUnavailable",
    "ConfigurationError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RempartError",
    "ResidencyViolation",
    "StorageUnavailable",
    "Unauthenticated",
    "VerificationFailed",
]


class RempartError(Exception):
    """Root of every error Rempart raises on purpose.

    ``code`` is stable across releases; ``http_status`` is what the API answers;
    ``details`` carries machine-readable facts (sizes, hashes, key paths) that
    the API adds to the problem document as extension members.
    """

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(RempartError):
    """Input from outside (a body, an argument, a file, a proof) is malformed."""

    code = "invalid_input"
    http_status = 422
    title = "Invalid input"


class NotFound(RempartError):
    code = "not_found"
    http_status = 404
    title = "Not found"


class Conflict(RempartError):
    """The request contradicts the current state (a duplicate, a stale version)."""

    code = "conflict"
    http_status = 409
    title = "Conflict"


class Unauthenticated(RempartError):
    code = "unauthenticated"
    http_status = 401
    title = "Authentication required"


class PermissionDenied(RempartError):
    """The caller is known but policy does not allow the action."""

    code = "permission_denied"
    http_status = 403
    title = "Permission denied"


class ResidencyViolation(PermissionDenied):
    """Data would be stored in, or leave to, a region the rules do not allow."""

    code = "residency_violation"
    title = "Residency violation"


class VerificationFailed(RempartError):
    """A signature, proof, checkpoint, ciphertext or chain did not verify."""

    code = "verification_failed"
    http_status = 422
    title = "Verification failed"


class StorageUnavailable(RempartError):
    code = "storage_unavailable"
    http_status = 503
    title = "Storage unavailable"


class AuditUnavailable(StorageUnavailable):
    """The transparency log could not record a decision, so the access is denied."""

    code = "audit_unavailable"
    title = "Audit log unavailable: access denied"


class Overloaded(RempartError):
    code = "overloaded"
    http_status = 503
    title = "Overloaded"


class RateLimited(Overloaded):
    """Too many failed authentications from this address: wait ``details['retry_after']`` seconds."""

    code = "rate_limited"
    http_status = 429
    title = "Too many requests"


class PayloadTooLarge(InvalidInput):
    """A request body is larger than the server's ``[server] max_body_bytes``."""

    code = "payload_too_large"
    http_status = 413
    title = "Payload too large"


class ConfigurationError(RempartError):
    """The deployment's configuration is wrong; ``details['path']`` names the key."""

    code = "configuration_error"
    http_status = 500
    title = "Configuration error"
