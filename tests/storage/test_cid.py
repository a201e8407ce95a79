"""Local CIDs are the CIDv1 (raw, sha2-256, base32) that IPFS gives the same bytes."""

from __future__ import annotations

import hashlib

import pytest

from services.storage.cid import cid_for_bytes, digest_from_cid


def test_matches_the_cid_ipfs_gives_hello_world() -> None:
    # `ipfs add --cid-version 1 --raw-leaves` of "hello world\n"
    assert cid_for_bytes(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_round_trips_to_the_digest() -> None:
    data = b"\x89PNG\r\n" * 100
    assert digest_from_cid(cid_for_bytes(data)) == hashlib.sha256(data).digest()


@pytest.mark.parametrize("cid", ["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "bafybeigdyrzt", "x"])
def test_foreign_cids_are_refused_by_digest_from_cid(cid: str) -> None:
    with pytest.raises(ValueError):
        digest_from_cid(cid)
