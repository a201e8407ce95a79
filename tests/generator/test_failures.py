"""Which failures are worth retrying, and how long to wait before the next try."""

from __future__ import annotations

import random

import pytest
import redis.exceptions

from services.common import errors
from services.generator.backoff import backoff_delay
from services.generator.engines.openai_errors import retry_after_seconds
from services.generator.failures import PermanentFailure, TransientFailure, classify


@pytest.mark.parametrize(
    "error",
    [errors.Unavailable("storage down"), errors.DeadlineExceeded("slow"), errors.ResourceExhausted("busy")],
)
def test_storage_outages_and_timeouts_are_transient(error: errors.DreamForgeError) -> None:
    failure = classify(error)
    assert failure.transient and failure.message == error.message


@pytest.mark.parametrize("error", [errors.InvalidArgument("bad name"), errors.NotFound("no such story")])
def test_rejected_requests_are_permanent(error: errors.DreamForgeError) -> None:
    assert not classify(error).transient


def test_a_bug_is_permanent_and_does_not_leak_its_message() -> None:
    failure = classify(KeyError("secret detail"))
    assert not failure.transient and failure.code == "internal" and "secret" not in failure.message


def test_job_failures_keep_their_kind() -> None:
    assert classify(TransientFailure("x", code="rate_limited")).transient
    assert not classify(PermanentFailure("x", code="content_policy")).transient


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base=2.0, cap=30.0, rng=rng) for n in range(1, 8)]
    assert 1.0 <= delays[0] <= 2.0 and 2.0 <= delays[1] <= 4.0 and 4.0 <= delays[2] <= 8.0
    assert all(15.0 <= d <= 30.0 for d in delays[4:])
    assert len({round(backoff_delay(3, base=2.0, cap=30.0), 6) for _ in range(20)}) > 1


def test_a_server_asking_for_longer_is_obeyed() -> None:
    assert backoff_delay(1, base=1.0, cap=2.0, retry_after=42.0) == 42.0


def test_retry_after_is_read_in_seconds_milliseconds_or_as_a_date() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "99999"}) == 300.0


def test_a_redis_blip_is_transient() -> None:
    assert classify(redis.exceptions.ConnectionError("reset by peer")).transient
