"""Retries, Retry-After, timeouts, dropped connections and error mapping, against the fake Pinata over real HTTP."""

from __future__ import annotations

import os
import socket
import time
from email.utils import formatdate

import httpx
import pytest

from services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable
from services.storage.backends.pinata import PinataFileStore
from services.storage.backends.pinata_http import RetryPolicy, error_text, parse_retry_after
from tests.fakes.pinata import FakePinata
from tests.storage.backends.conftest import FAST_RETRY, SleepLog, pinata_store_for
from tests.storage.backends.test_contract import collect, put, read_all


class _RefuseFirstConnections(httpx.AsyncBaseTransport):
    """Real HTTP, except that the first `count` connection attempts fail as if nothing listened yet."""

    def __init__(self, count: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._left = count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._left > 0:
            self._left -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _statuses(fake: FakePinata, method: str, path: str) -> list[int | str | None]:
    return [seen.fault or seen.status for seen in fake.requests_to(method, path)]


# -- retried, then fine ------------------------------------------------------------------


async def test_a_429_is_retried_after_the_seconds_retry_after_asks_for(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    group = await pinata_store.create_group("story")
    fake_pinata.fail("GET", r"^/v3/groups/public$", "429", times=2, retry_after="1")

    assert [found.id for found in await pinata_store.find_groups("story")] == [group.id]
    assert sleeps.delays == [1.0, 1.0]
    assert _statuses(fake_pinata, "GET", r"^/v3/groups/public$") == ["429", "429", 200]


async def test_a_retry_after_date_is_honoured_up_to_the_cap(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    await pinata_store.create_group("story")
    fake_pinata.fail("GET", r"^/v3/groups/public$", "429", retry_after=formatdate(time.time() + 3600, usegmt=True))

    await pinata_store.find_groups("story")

    assert sleeps.delays == [FAST_RETRY.max_retry_after]


async def test_a_500_is_retried_with_a_short_backoff(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    group = await pinata_store.create_group("story")
    fake_pinata.fail("GET", rf"^/v3/groups/public/{group.id}$", "500")

    assert (await pinata_store.get_group(group.id)).id == group.id
    [delay] = sleeps.delays
    assert 0 < delay <= FAST_RETRY.base_delay


async def test_a_request_that_hangs_is_retried_after_the_timeout(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    group = await pinata_store.create_group("story")
    await put(pinata_store, group.id, "text_0", b"hello")
    impatient = pinata_store_for(fake_pinata, sleeps, timeout=0.5)
    fake_pinata.fail("GET", r"^/v3/files/public$", "hang")
    try:
        assert [file.name for file in await collect(impatient.iter_files(group.id))] == ["text_0"]
    finally:
        await impatient.aclose()
    # (On a slow machine an ordinary answer may also miss 0.5 s; only the first must be the hang.)
    assert _statuses(fake_pinata, "GET", r"^/v3/files/public$")[0] == "hang"


async def test_a_dropped_connection_is_retried(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    group = await pinata_store.create_group("story")
    record = await put(pinata_store, group.id, "text_0", b"hello")
    fake_pinata.fail("DELETE", r"^/v3/files/public/", "drop")

    await pinata_store.delete_file(record)

    assert record.id not in fake_pinata.files
    assert _statuses(fake_pinata, "DELETE", r"^/v3/files/public/") == ["drop", 200]


async def test_gateway_reads_are_retried_on_429_and_5xx(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, sleeps: SleepLog
) -> None:
    group = await pinata_store.create_group("story")
    data = os.urandom(70_000)
    record = await put(pinata_store, group.id, "image_0", data)
    fake_pinata.fail("GET", r"^/ipfs/", "429", retry_after="1")
    fake_pinata.fail("GET", r"^/ipfs/", "503")

    assert await read_all(pinata_store, record) == data
    assert _statuses(fake_pinata, "GET", r"^/ipfs/") == ["429", "503", 200]
    assert sleeps.delays[0] == 1.0


# -- uploads: retried only when Pinata certainly did not store them ----------------------


async def test_an_upload_rate_limited_with_429_is_sent_again_in_full(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    data = os.urandom(150_000)
    fake_pinata.fail("POST", r"^/v3/files$", "429", retry_after="0")

    record = await put(pinata_store, group.id, "image_0", data)

    assert _statuses(fake_pinata, "POST", r"^/v3/files$") == ["429", 200]
    assert [file.id for file in fake_pinata.files_named("image_0")] == [record.id]
    assert await read_all(pinata_store, record) == data


async def test_an_upload_that_could_not_connect_is_retried(fake_pinata: FakePinata, sleeps: SleepLog) -> None:
    store = pinata_store_for(fake_pinata, sleeps, transport=_RefuseFirstConnections(2))
    try:
        group = await store.create_group("story")
        record = await put(store, group.id, "text_0", b"hello")
    finally:
        await store.aclose()
    assert len(sleeps.delays) == 2
    assert [file.id for file in fake_pinata.files_named("text_0")] == [record.id]


async def test_an_upload_answered_with_500_is_not_repeated_because_it_may_be_stored(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    fake_pinata.fail("POST", r"^/v3/files$", "500")

    with pytest.raises(Unavailable, match=r"Pinata failed POST /v3/files .*duplicate"):
        await put(pinata_store, group.id, "story.json", b"{}")
    assert _statuses(fake_pinata, "POST", r"^/v3/files$") == ["500"]


async def test_an_upload_whose_answer_is_lost_is_not_repeated(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    fake_pinata.fail("POST", r"^/v3/files$", "drop_after")

    with pytest.raises(Unavailable, match=r"connection to Pinata broke during POST /v3/files .*duplicate"):
        await put(pinata_store, group.id, "story.json", b"{}")
    # Pinata did store it: the caller learns the outcome is unknown, and nothing was stored twice.
    assert len(fake_pinata.files_named("story.json")) == 1
    assert len(fake_pinata.requests_to("POST", r"^/v3/files$")) == 1


async def test_creating_a_group_is_not_repeated_after_a_500(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.fail("POST", r"^/v3/groups/public$", "500")

    with pytest.raises(Unavailable, match="duplicate"):
        await pinata_store.create_group("DREAMFORGE")
    assert len(fake_pinata.requests_to("POST", r"^/v3/groups/public$")) == 1


# -- giving up ---------------------------------------------------------------------------


async def test_when_retries_run_out_the_error_is_unavailable_and_names_the_call(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.fail("GET", r"^/v3/groups/public$", "500", times=100)

    with pytest.raises(Unavailable) as failure:
        await pinata_store.find_groups("story")

    assert "Pinata failed GET /v3/groups/public (500: Internal Server Error; 4 attempts)" in str(failure.value)
    assert len(fake_pinata.requests_to("GET", r"^/v3/groups/public$")) == FAST_RETRY.max_attempts


async def test_a_rate_limit_that_never_lifts_is_unavailable(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.fail("*", r"^/v3/", "429", times=100, retry_after="0")

    with pytest.raises(Unavailable, match=r"Pinata kept rate-limiting POST /v3/groups/public \(429"):
        await pinata_store.create_group("story")


async def test_connections_that_keep_dropping_are_unavailable(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.fail("GET", r"^/v3/groups/public$", "drop", times=100)

    with pytest.raises(Unavailable, match=r"could not reach Pinata for GET /v3/groups/public \(RemoteProtocolError"):
        await collect(pinata_store.iter_groups())


async def test_a_pinata_that_never_answers_is_deadline_exceeded(fake_pinata: FakePinata, sleeps: SleepLog) -> None:
    store = pinata_store_for(fake_pinata, sleeps, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    fake_pinata.fail("GET", r"^/v3/groups/", "hang", times=100)
    try:
        with pytest.raises(DeadlineExceeded, match=r"Pinata did not answer GET /v3/groups/public in time .*2 attempts"):
            await store.find_groups("story")
    finally:
        await store.aclose()


async def test_an_unreachable_pinata_is_unavailable(fake_pinata: FakePinata, sleeps: SleepLog) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    store = pinata_store_for(fake_pinata, sleeps, api_url=f"http://127.0.0.1:{closed_port}")
    try:
        with pytest.raises(Unavailable, match=r"could not reach Pinata for GET /data/testAuthentication .*2 attempts"):
            await store.check()
    finally:
        await store.aclose()


# -- small pieces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("3", 3.0), ("1.5", 1.5), ("-4", 0.0), ("soon", None)],
)
def test_retry_after_seconds_are_read(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_dates_count_from_now_and_past_dates_mean_at_once() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_doubles_within_its_cap_and_keeps_half_of_it() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        for _ in range(50):
            assert ceiling / 2 <= policy.backoff(attempt) <= ceiling


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": "Invalid request format."}', "Invalid request format."),
        ('{"error": {"reason": "NO_SCOPES_FOUND", "details": "no scopes"}}', "NO_SCOPES_FOUND: no scopes"),
        ('{"error": {"code": 400, "message": "bad name"}}', "400: bad name"),
        ('{"message": "Not Found"}', "Not Found"),
        ("<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        ("", "HTTP 400 with an empty body"),
    ],
)
def test_pinatas_error_text_is_read_from_any_body_shape(body: str, expected: str) -> None:
    assert error_text(httpx.Response(400, text=body)) == expected


def test_long_error_bodies_are_shortened() -> None:
    assert len(error_text(httpx.Response(500, text="x" * 5000))) == 300


async def test_other_client_errors_map_to_invalid_argument_or_failed_precondition(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    http = pinata_store._http
    bad = httpx.Response(400, json={"error": "Invalid request format."})
    conflict = httpx.Response(409, json={"error": "busy"})

    assert isinstance(http.status_failure(bad, "POST /v3/x", 1, True, None), InvalidArgument)
    assert isinstance(http.status_failure(conflict, "POST /v3/x", 1, True, None), FailedPrecondition)
