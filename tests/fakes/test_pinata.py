"""The fake Pinata itself: it must be as loose and as strict as the real one, or the backend tests prove nothing."""

from __future__ import annotations

import httpx

from tests.fakes.pinata import FakePinata, go_timestamp, running_fake_pinata


def test_name_filters_match_loosely_like_pinatas_may() -> None:
    with running_fake_pinata() as fake:
        for name in ("index.json", "INDEX.JSON", "old-index.json.tmp", "other"):
            fake.add_group(name)
        auth = {"Authorization": f"Bearer {fake.jwt}"}
        answer = httpx.get(f"{fake.url}/v3/groups/public", params={"name": "index.json", "limit": "10"}, headers=auth)

    names = sorted(group["name"] for group in answer.json()["data"]["groups"])
    assert names == ["INDEX.JSON", "index.json", "old-index.json.tmp"]


def test_lists_come_in_small_pages_with_opaque_tokens_and_a_full_last_page_is_followed_by_an_empty_one() -> None:
    with running_fake_pinata(FakePinata(page_size=3)) as fake:
        for number in range(6):
            fake.add_group(f"group {number}")
        auth = {"Authorization": f"Bearer {fake.jwt}"}
        pages = []
        token = ""
        for _ in range(4):
            params = {"pageToken": token} if token else {}
            data = httpx.get(f"{fake.url}/v3/groups/public", params=params, headers=auth).json()["data"]
            pages.append([group["name"] for group in data["groups"]])
            token = data["next_page_token"]
            if not token:
                break

    assert pages == [["group 5", "group 4", "group 3"], ["group 2", "group 1", "group 0"], []]


def test_api_calls_without_the_jwt_are_refused_with_401() -> None:
    with running_fake_pinata() as fake:
        answer = httpx.get(f"{fake.url}/v3/files/public", headers={"Authorization": "Bearer nope"})

    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "INVALID_CREDENTIALS"


def test_the_gateway_serves_only_pinned_public_content() -> None:
    with running_fake_pinata() as fake:
        public = fake.add_file(None, "a", b"public bytes")
        private = fake.add_file(None, "b", b"private bytes", network="private")
        served = httpx.get(f"{fake.url}/ipfs/{public.cid}")
        hidden = httpx.get(f"{fake.url}/ipfs/{private.cid}")
        unsigned = httpx.get(f"{fake.url}/files/{private.cid}")

    assert (served.status_code, served.content) == (200, b"public bytes")
    assert hidden.status_code == 404
    assert unsigned.status_code == 401


def test_faults_wait_for_their_trigger_and_run_out() -> None:
    with running_fake_pinata() as fake:
        fake.fail("GET", r"^/data/", "500", times=1, after=("GET", r"^/v3/files/public$"))
        auth = {"Authorization": f"Bearer {fake.jwt}"}
        before = httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code
        httpx.get(f"{fake.url}/v3/files/public", headers=auth)
        armed = httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code
        spent = httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code

    assert (before, armed, spent) == (200, 500, 200)
    assert fake.pending_faults() == 0


def test_a_fault_can_strike_every_nth_request_and_wait_for_an_upload_of_a_given_name() -> None:
    with running_fake_pinata() as fake:
        auth = {"Authorization": f"Bearer {fake.jwt}"}
        fake.fail("GET", r"^/data/", "503", times=2, every=2)
        storm = [httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code for _ in range(6)]
        fake.fail("GET", r"^/data/", "500", after_name=r"^index-snapshot-")

        def upload(name: str) -> None:
            files = {"file": (name, b"{}", "application/json")}
            httpx.post(f"{fake.url}/v3/files", headers=auth, data={"network": "public", "name": name}, files=files)

        upload("index-entry-000000000001.json")
        still_dormant = httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code
        upload("index-snapshot-000000000001.json")
        armed = httpx.get(f"{fake.url}/data/testAuthentication", headers=auth).status_code

    assert storm == [200, 503, 200, 503, 200, 200]
    assert (still_dormant, armed) == (200, 500)


def test_timestamps_look_like_gos_with_trailing_zeros_trimmed() -> None:
    from datetime import datetime, timezone

    assert go_timestamp(datetime(2024, 8, 28, 20, 58, 46, 967790, tzinfo=timezone.utc)) == "2024-08-28T20:58:46.96779Z"
    assert go_timestamp(datetime(2024, 8, 28, 20, 58, 46, tzinfo=timezone.utc)) == "2024-08-28T20:58:46Z"
