"""The domain error vocabulary shared by every service.

Domain code raises these and never imports gRPC; `services.common.grpc_errors`
maps them to status codes in one place, and the gateway maps those to HTTP.
"""

from __future__ import annotations


class DreamForgeError(Exception):
    """Base class: the message is shown to the caller, so it says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DreamForgeError):
    """The request itself is wrong (bad field value); retrying it will not help."""


class NotFound(DreamForgeError):
    """The named story, asset or job does not exist."""


class AlreadyExists(DreamForgeError):
    """Something with that identity exists and differs from what was asked."""


class FailedPrecondition(DreamForgeError):
    """The request is well formed but the system is not in a state to do it."""


class ResourceExhausted(DreamForgeError):
    """A limit was hit (size, rate); retry later or with less."""


class Unavailable(DreamForgeError):
    """A dependency is down or answered with a transient error; retrying may help."""


class DeadlineExceeded(DreamForgeError):
    """A dependency did not answer in time."""


class Unauthenticated(DreamForgeError):
    """Credentials (e.g. the Pinata JWT) were refused."""


class PermissionDenied(DreamForgeError):
    """Credentials are valid but lack a permission (e.g. a missing key scope)."""


class DataLoss(DreamForgeError):
    """Stored data is corrupt or unreadable (e.g. a manifest that is not valid JSON)."""


class Cancelled(DreamForgeError):
    """The operation was cancelled by a client."""
