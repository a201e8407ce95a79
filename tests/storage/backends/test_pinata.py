"""The pinata backend against a fake Pinata over real HTTP: networks, uploads, gateways, signed links, settings."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone

import httpx
import pytest

from services.common.config import ConfigError, Secret
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated, Unavailable
from services.storage.backends.base import FileRecord
from services.storage.backends.pinata import PinataConfig, PinataFileStore, gateway_base
from tests.fakes.pinata import FakePinata
from tests.storage.backends.conftest import FAST_RETRY, SleepLog, pinata_store_for
from tests.storage.backends.test_contract import collect, put, read_all


class _PointAt(httpx.AsyncBaseTransport):
    """Real HTTP, but one host name resolves to the fake (like a hosts-file entry); records every URL asked for."""

    def __init__(self, host: str, target: str) -> None:
        self._host = host
        self._target = httpx.URL(target)
        self._inner = httpx.AsyncHTTPTransport()
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        if request.url.host == self._host:
            target = self._target
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _sign_requests(fake: FakePinata) -> list[str]:
    return [seen.path for seen in fake.requests_to("POST", r"^/v3/files/(sign|private/download_link)$")]


# -- networks ---------------------------------------------------------------------------


async def test_new_groups_and_files_go_to_the_public_network_by_default(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    record = await put(pinata_store, group.id, "text_0", b"hello")

    assert group.network == "public" and record.network == "public"
    assert fake_pinata.groups[group.id].network == "public"
    assert fake_pinata.files[record.id].network == "public"
    assert fake_pinata.requests_to("GET", r"^/ipfs/") == []
    assert await read_all(pinata_store, record) == b"hello"
    assert [seen.path for seen in fake_pinata.requests_to("GET", r"^/(ipfs|files)/")] == [f"/ipfs/{record.cid}"]


async def test_with_the_private_network_configured_new_files_are_private_and_read_through_signed_links(
    fake_pinata: FakePinata,
) -> None:
    store = pinata_store_for(fake_pinata, network="private")
    try:
        group = await store.create_group("secret story")
        record = await put(store, group.id, "text_0", b"whisper")

        assert fake_pinata.files[record.id].network == "private"
        assert await read_all(store, record) == b"whisper"
    finally:
        await store.aclose()
    assert fake_pinata.requests_to("GET", r"^/ipfs/") == []
    assert len(fake_pinata.requests_to("GET", rf"^/files/{record.cid}$")) == 1


async def test_the_original_apps_private_files_are_listed_and_read_through_signed_links(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    [story_id] = fake_pinata.seed_original_app([("The honey mine", ["Once a bear", "found honey"], [b"\x89PNG1"])])

    group = await pinata_store.get_group(story_id)
    files = {file.name: file for file in await collect(pinata_store.iter_files(story_id))}
    text = await read_all(pinata_store, files["text_1"])

    assert group.network == "private" and group.name == "The honey mine"
    assert set(files) == {"text_0", "text_1", "image_0"}
    assert text == b"found honey"
    [sign] = fake_pinata.requests_to("POST", r"^/v3/files/private/download_link$")
    assert sign.json_body["url"] == f"{fake_pinata.url}/files/{files['text_1'].cid}"
    assert sign.json_body["method"] == "GET"
    assert abs(sign.json_body["date"] - time.time()) < 120
    assert sign.json_body["expires"] > 0
    [fetch] = fake_pinata.requests_to("GET", r"^/files/")
    assert "authorization" not in fetch.headers
    assert fetch.query["X-Signature"]


async def test_groups_of_both_networks_are_found_by_name_oldest_first(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.seed_original_app([("Old story", ["text"], [])])
    [old_index] = [group for group in fake_pinata.groups.values() if group.name == "DREAMFORGE"]
    new_index = await pinata_store.create_group("DREAMFORGE")

    found = await pinata_store.find_groups("DREAMFORGE")
    everything = await collect(pinata_store.iter_groups())

    assert [(group.id, group.network) for group in found] == [(old_index.id, "private"), (new_index.id, "public")]
    assert {group.network for group in everything} == {"public", "private"}
    assert len(everything) == 3


async def test_an_upload_into_a_private_group_goes_to_the_private_network(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    [story_id] = fake_pinata.seed_original_app([("Old story", ["text"], [])])

    record = await put(pinata_store, story_id, "story.json", b"{}", content_type="application/json")

    assert record.network == "private"
    [upload] = fake_pinata.requests_to("POST", r"^/v3/files$")
    assert upload.form["network"] == "private"
    assert await read_all(pinata_store, record) == b"{}"


async def test_a_plan_without_the_private_network_still_lists_the_public_groups(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake_pinata.private_network = False
    group = await pinata_store.create_group("public story")

    listed = await collect(pinata_store.iter_groups())

    assert [found.id for found in listed] == [group.id]
    assert "refused the private network" in caplog.text
    with pytest.raises(NotFound):
        await pinata_store.get_group("01234567-89ab-4def-8123-456789abcdef")


# -- uploads ----------------------------------------------------------------------------


async def test_an_upload_sends_network_group_name_keyvalues_and_the_part_content_type(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    data = os.urandom(5000)

    await put(pinata_store, group.id, "image_0", data, content_type="image/png", keyvalues={"part": "0"})

    [upload] = fake_pinata.requests_to("POST", r"^/v3/files$")
    assert upload.form == {"network": "public", "name": "image_0", "group_id": group.id, "keyvalues": '{"part": "0"}'}
    assert upload.upload == {"filename": "image_0", "content_type": "image/png", "size": 5000}
    assert upload.headers["authorization"] == f"Bearer {fake_pinata.jwt}"
    [stored] = fake_pinata.files_named("image_0")
    assert fake_pinata.blobs[stored.cid] == data


async def test_more_keyvalues_than_pinata_keeps_are_refused_before_any_call(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")

    with pytest.raises(InvalidArgument, match="at most 10"):
        await put(pinata_store, group.id, "x", b"x", keyvalues={f"k{n}": "v" for n in range(11)})
    assert fake_pinata.requests_to("POST", r"^/v3/files$") == []


async def test_an_upload_into_a_group_pinata_no_longer_has_reports_pinatas_reason(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    del fake_pinata.groups[group.id]  # deleted by someone else; the store still remembers its network

    with pytest.raises(InvalidArgument, match=rf"Pinata rejected POST /v3/files .*group {group.id} not found"):
        await put(pinata_store, group.id, "text_0", b"late")


async def test_a_group_another_replica_deleted_lists_no_files_though_this_store_remembered_it(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    await put(pinata_store, group.id, "text_0", b"hello")
    other_replica = pinata_store_for(fake_pinata)
    try:
        for file in await collect(other_replica.iter_files(group.id)):
            await other_replica.delete_file(file)
        await other_replica.delete_group(group.id)
    finally:
        await other_replica.aclose()

    assert await collect(pinata_store.iter_files(group.id)) == []
    with pytest.raises(NotFound):
        await pinata_store.get_group(group.id)


async def test_files_whose_cid_is_still_pending_are_not_listed(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    ready = await put(pinata_store, group.id, "ready", b"ready")
    pending = fake_pinata.add_file(group.id, "pending", b"soon")
    pending.cid = "pending"

    assert [file.id for file in await collect(pinata_store.iter_files(group.id))] == [ready.id]


# -- signed links and gateways ----------------------------------------------------------


async def test_signed_links_fall_back_to_v3_files_sign_and_keep_using_it(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.download_link_route = False
    [story_id] = fake_pinata.seed_original_app([("Old story", ["one", "two"], [])])
    files = {file.name: file for file in await collect(pinata_store.iter_files(story_id))}

    assert await read_all(pinata_store, files["text_0"]) == b"one"
    assert await read_all(pinata_store, files["text_1"]) == b"two"
    assert _sign_requests(fake_pinata) == ["/v3/files/private/download_link", "/v3/files/sign", "/v3/files/sign"]


async def test_a_signed_link_is_reused_while_it_is_fresh(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    [story_id] = fake_pinata.seed_original_app([("Old story", ["one"], [])])
    [text] = await collect(pinata_store.iter_files(story_id, name="text_0"))

    await read_all(pinata_store, text)
    await read_all(pinata_store, text, offset=1)

    assert len(_sign_requests(fake_pinata)) == 1
    assert len(fake_pinata.requests_to("GET", r"^/files/")) == 2


async def test_an_expired_signed_link_is_replaced_once(fake_pinata: FakePinata, pinata_store: PinataFileStore) -> None:
    [story_id] = fake_pinata.seed_original_app([("Old story", ["one"], [])])
    [text] = await collect(pinata_store.iter_files(story_id, name="text_0"))
    fake_pinata.issue_expired_links(1)

    assert await read_all(pinata_store, text) == b"one"
    assert len(_sign_requests(fake_pinata)) == 2
    assert [seen.status for seen in fake_pinata.requests_to("GET", r"^/files/")] == [403, 200]


async def test_a_gateway_that_keeps_refusing_signed_links_is_permission_denied(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    [story_id] = fake_pinata.seed_original_app([("Old story", ["one"], [])])
    [text] = await collect(pinata_store.iter_files(story_id, name="text_0"))
    fake_pinata.issue_expired_links(5)

    with pytest.raises(PermissionDenied, match="PINATA_GATEWAY"):
        await read_all(pinata_store, text)


async def test_the_gateway_token_is_sent_as_a_header_and_never_the_jwt(fake_pinata: FakePinata) -> None:
    fake_pinata.gateway_token = "gateway-access-token"
    store = pinata_store_for(fake_pinata, gateway_token=Secret("gateway-access-token"))
    try:
        group = await store.create_group("story")
        record = await put(store, group.id, "text_0", b"hello")
        assert await read_all(store, record) == b"hello"
    finally:
        await store.aclose()

    [fetch] = fake_pinata.requests_to("GET", r"^/ipfs/")
    assert fetch.headers["x-pinata-gateway-token"] == "gateway-access-token"
    assert "authorization" not in fetch.headers
    assert "pinataGatewayToken" not in fetch.query


async def test_a_gateway_with_access_controls_and_no_token_is_permission_denied(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.gateway_token = "gateway-access-token"
    group = await pinata_store.create_group("story")
    record = await put(pinata_store, group.id, "text_0", b"hello")

    with pytest.raises(PermissionDenied, match="set PINATA_GATEWAY_TOKEN"):
        await read_all(pinata_store, record)


async def test_a_gateway_given_as_a_domain_is_read_over_https_at_that_domain(fake_pinata: FakePinata) -> None:
    transport = _PointAt("example-words-123.mypinata.cloud", fake_pinata.url)
    store = pinata_store_for(fake_pinata, gateway="example-words-123.mypinata.cloud", transport=transport)
    try:
        group = await store.create_group("story")
        public = await put(store, group.id, "text_0", b"public words")
        [story_id] = fake_pinata.seed_original_app([("Old story", ["private words"], [])])
        [private] = await collect(store.iter_files(story_id, name="text_0"))

        assert store.gateway == "https://example-words-123.mypinata.cloud"
        assert await read_all(store, public) == b"public words"
        assert await read_all(store, private) == b"private words"
    finally:
        await store.aclose()
    assert f"https://example-words-123.mypinata.cloud/ipfs/{public.cid}" in transport.seen
    [sign] = fake_pinata.requests_to("POST", r"^/v3/files/private/download_link$")
    assert sign.json_body["url"] == f"https://example-words-123.mypinata.cloud/files/{private.cid}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.mypinata.cloud", "https://example.mypinata.cloud"),
        ("example.mypinata.cloud/", "https://example.mypinata.cloud"),
        ("https://stories.example.com", "https://stories.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_a_gateway_domain_gets_https_and_a_full_url_keeps_its_scheme(given: str, expected: str) -> None:
    assert gateway_base(given) == expected


async def test_ranges_come_out_right_when_the_gateway_ignores_range_headers(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    fake_pinata.honour_ranges = False
    group = await pinata_store.create_group("story")
    data = os.urandom(200_000)
    record = await put(pinata_store, group.id, "image_0", data)

    assert await read_all(pinata_store, record, offset=70_000, length=50_000) == data[70_000:120_000]
    assert await read_all(pinata_store, record, offset=150_000) == data[150_000:]
    ranges = [seen.headers.get("range") for seen in fake_pinata.requests_to("GET", r"^/ipfs/")]
    assert ranges == ["bytes=70000-119999", "bytes=150000-"]


async def test_a_download_cut_off_mid_body_resumes_where_it_stopped(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    data = os.urandom(200_000)
    record = await put(pinata_store, group.id, "image_0", data)
    fake_pinata.fail("GET", r"^/ipfs/", "cut")

    assert await read_all(pinata_store, record) == data
    first, second = fake_pinata.requests_to("GET", r"^/ipfs/")
    assert first.fault == "cut" and "range" not in first.headers
    resumed_at = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at < len(data)


async def test_content_the_gateway_does_not_have_is_not_found(pinata_store: PinataFileStore) -> None:
    ghost = FileRecord(
        id="01234567-89ab-4def-8123-456789abcdef",
        name="ghost",
        cid="bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
        size=12,
        content_type="text/plain",
        group_id=None,
        created_at=datetime.now(timezone.utc),
    )

    with pytest.raises(NotFound, match="no content for 'ghost'"):
        await read_all(pinata_store, ghost)


# -- pagination and shapes --------------------------------------------------------------


async def test_the_page_size_is_sent_as_limit(fake_pinata: FakePinata) -> None:
    store = pinata_store_for(fake_pinata, page_size=2)
    try:
        for number in range(5):
            await store.create_group(f"group {number}")
        assert len(await collect(store.iter_groups())) == 5
    finally:
        await store.aclose()
    public_lists = fake_pinata.requests_to("GET", r"^/v3/groups/public$")
    assert [seen.query.get("limit") for seen in public_lists] == ["2", "2", "2"]
    assert "pageToken" not in public_lists[0].query
    assert public_lists[1].query["pageToken"] and public_lists[2].query["pageToken"]


async def test_listing_stops_when_pinata_repeats_a_page_token(
    fake_pinata: FakePinata, pinata_store: PinataFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    group = await pinata_store.create_group("story")
    for number in range(5):
        await put(pinata_store, group.id, f"text_{number}", b"x")
    fake_pinata.repeat_page_tokens = True

    listed = await collect(pinata_store.iter_files(group.id))

    assert len(fake_pinata.requests_to("GET", r"^/v3/files/public$")) == 2
    assert len(listed) == 6  # the first page twice: what Pinata sent, no endless loop
    assert "repeated a page token" in caplog.text


async def test_listing_stops_at_an_empty_page_even_if_it_carries_a_token(
    fake_pinata: FakePinata, pinata_store: PinataFileStore
) -> None:
    group = await pinata_store.create_group("story")
    for number in range(4):
        await put(pinata_store, group.id, f"text_{number}", b"x")
    fake_pinata.tokens_on_every_page = True

    listed = await collect(pinata_store.iter_files(group.id))

    assert len(listed) == 4
    # 3 + 1 + an empty page with a fresh token, where the listing must stop.
    assert len(fake_pinata.requests_to("GET", r"^/v3/files/public$")) == 3


async def test_camel_case_creation_dates_are_read(fake_pinata: FakePinata, pinata_store: PinataFileStore) -> None:
    fake_pinata.date_key = "createdAt"
    group = await pinata_store.create_group("story")

    [listed] = await collect(pinata_store.iter_groups())

    assert group.created_at == fake_pinata.groups[group.id].created_at
    assert listed.created_at == group.created_at


# -- health and credentials -------------------------------------------------------------


async def test_check_passes_with_a_key_that_has_every_scope(pinata_store: PinataFileStore) -> None:
    await pinata_store.check()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_checks_soon_after_pinata_answered_cost_no_calls(fake_pinata: FakePinata) -> None:
    clock = _Clock()
    store = pinata_store_for(fake_pinata, clock=clock)
    try:
        await store.check()
        thorough = len(fake_pinata.requests)
        clock.now += 30
        await store.check()
        await store.create_group("story")  # ordinary traffic counts as a sign of life
        clock.now += 50
        await store.check()
    finally:
        await store.aclose()
    assert thorough == 3  # testAuthentication, then one listing per scope family
    assert len(fake_pinata.requests) == thorough + 1  # only the group creation


async def test_an_idle_store_checks_with_one_small_listing(fake_pinata: FakePinata) -> None:
    clock = _Clock()
    store = pinata_store_for(fake_pinata, clock=clock)
    try:
        await store.check()
        clock.now += 61
        before = len(fake_pinata.requests)
        await store.check()
    finally:
        await store.aclose()
    [listing] = fake_pinata.requests[before:]
    assert (listing.method, listing.path, listing.query) == ("GET", "/v3/groups/public", {"limit": "1"})


async def test_a_failed_check_is_repeated_for_ten_seconds_without_asking_pinata(fake_pinata: FakePinata) -> None:
    clock = _Clock()
    store = pinata_store_for(fake_pinata, jwt=Secret("revoked-key-jwt"), clock=clock)
    try:
        for _ in range(5):
            with pytest.raises(Unauthenticated):
                await store.check()
            clock.now += 1.9
        asked_while_failing = len(fake_pinata.requests_to("GET", r"^/data/testAuthentication$"))
        clock.now += 1
        with pytest.raises(Unauthenticated):
            await store.check()
    finally:
        await store.aclose()
    assert asked_while_failing == 1
    assert len(fake_pinata.requests_to("GET", r"^/data/testAuthentication$")) == 2


async def test_a_refused_jwt_is_unauthenticated_and_says_which_setting_to_fix(fake_pinata: FakePinata) -> None:
    store = pinata_store_for(fake_pinata, jwt=Secret("revoked-key-jwt"))
    try:
        with pytest.raises(Unauthenticated, match=r"Pinata refused the JWT .*PINATA_JWT"):
            await store.check()
    finally:
        await store.aclose()


async def test_a_key_without_scopes_passes_test_authentication_but_not_check(fake_pinata: FakePinata) -> None:
    fake_pinata.add_key("key-with-no-scopes", [])
    store = pinata_store_for(fake_pinata, jwt=Secret("key-with-no-scopes"))
    try:
        with pytest.raises(PermissionDenied, match="org:files:read"):
            await store.check()
    finally:
        await store.aclose()
    [auth] = fake_pinata.requests_to("GET", r"^/data/testAuthentication$")
    assert auth.status == 200


async def test_a_read_only_key_cannot_create_groups(fake_pinata: FakePinata) -> None:
    fake_pinata.add_key("read-only-key", ["org:files:read", "org:groups:read"])
    store = pinata_store_for(fake_pinata, jwt=Secret("read-only-key"))
    try:
        await store.check()
        with pytest.raises(PermissionDenied, match="Pinata refused POST /v3/groups/public"):
            await store.create_group("story")
    finally:
        await store.aclose()


async def test_the_jwt_never_appears_in_logs_errors_or_reprs(
    fake_pinata: FakePinata, sleeps: SleepLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-jwt-that-is-also-secret"
    store = pinata_store_for(fake_pinata, sleeps)
    stranger = pinata_store_for(fake_pinata, jwt=Secret(wrong))
    errors: list[Exception] = []
    try:
        group = await store.create_group("story")
        fake_pinata.fail("POST", r"^/v3/files$", "429", retry_after="0")
        record = await put(store, group.id, "text_0", b"hello")
        fake_pinata.fail("GET", r"^/ipfs/", "500")
        await read_all(store, record)
        fake_pinata.fail("GET", r"^/v3/files/public$", "drop", times=10)
        with pytest.raises(Unavailable) as exhausted:
            await collect(store.iter_files(group.id))
        errors.append(exhausted.value)
        with pytest.raises(Unauthenticated) as refused:
            await stranger.create_group("story")
        errors.append(refused.value)
    finally:
        await store.aclose()
        await stranger.aclose()
    config = PinataConfig(pinata_jwt=Secret(fake_pinata.jwt), pinata_gateway=fake_pinata.url)

    shown = [caplog.text, repr(store), repr(stranger), repr(config), str(config)]
    shown += [str(error) for error in errors] + [repr(error) for error in errors]
    for text in shown:
        assert fake_pinata.jwt not in text
        assert wrong not in text
    assert "retrying" in caplog.text  # the logs did see the failures


# -- settings ---------------------------------------------------------------------------


async def test_a_store_built_from_pinata_config_works_and_tolerates_a_v3_suffix(fake_pinata: FakePinata) -> None:
    config = PinataConfig(
        pinata_jwt=Secret(fake_pinata.jwt),
        pinata_gateway=fake_pinata.url,
        pinata_api_url=f"{fake_pinata.url}/v3/",
        pinata_upload_url=fake_pinata.url,
        retry=FAST_RETRY,
    )
    store = PinataFileStore.from_config(config)
    try:
        await store.check()
        group = await store.create_group("story")
        assert await read_all(store, await put(store, group.id, "t", b"ok")) == b"ok"
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"gateway": ""}, "PINATA_GATEWAY"),
        ({"gateway": "ftp://files.example.com"}, "PINATA_GATEWAY"),
        ({"network": "secret"}, "PINATA_NETWORK"),
        ({"api_url": "api.pinata.cloud"}, "PINATA_API_URL"),
        ({"upload_url": "not a url"}, "PINATA_UPLOAD_URL"),
        ({"jwt": Secret("")}, "PINATA_JWT"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(options: dict[str, object], setting: str) -> None:
    arguments: dict[str, object] = {"gateway": "example.mypinata.cloud", **options}
    jwt = arguments.pop("jwt", Secret("a-jwt"))
    with pytest.raises(ConfigError, match=setting):
        PinataFileStore(jwt, **arguments)  # type: ignore[arg-type]
