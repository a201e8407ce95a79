"""How a job attempt can fail: transient (retry later), permanent (fail now), or cancelled.

Engines and the storage client raise these (or the shared domain errors, which
`classify` sorts into the two kinds); the worker decides what to do from the kind.
"""

from __future__ import annotations

import redis.exceptions

from services.common import errors


class JobFailure(errors.DreamForgeError):
    """A job attempt failed; `code` is the short machine-readable reason shown to clients."""

    transient = False

    def __init__(self, message: str, *, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class TransientFailure(JobFailure):
    """Worth retrying: rate limits, server errors, timeouts, a dependency that is down."""

    transient = True


class PermanentFailure(JobFailure):
    """Retrying will not help: a refused prompt, a rejected request, output that stays invalid."""


class JobCancelled(errors.Cancelled):
    """A client cancelled the job; the pipeline stops at the next step boundary."""


class LeaseLost(errors.DreamForgeError):
    """Another worker reclaimed this job (this one stalled too long); stop without recording anything."""


_TRANSIENT_ERRORS = (errors.Unavailable, errors.DeadlineExceeded, errors.ResourceExhausted)


def classify(exc: BaseException) -> JobFailure:
    """The failure an exception from the pipeline stands for."""
    if isinstance(exc, JobFailure):
        return exc
    if isinstance(exc, _TRANSIENT_ERRORS):
        return TransientFailure(exc.message, code="unavailable")
    if isinstance(exc, errors.DreamForgeError):
        return PermanentFailure(exc.message, code=type(exc).__name__.lower())
    if isinstance(exc, (OSError, TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return TransientFailure(f"{type(exc).__name__}: {exc}", code="unavailable")
    return PermanentFailure(f"internal error: {type(exc).__name__}", code="internal")
