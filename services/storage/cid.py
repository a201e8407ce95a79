"""Content identifiers for the local store: CIDv1, raw codec, sha2-256, multibase base32 (`bafkrei...`).

These are the identifiers IPFS gives a file of up to one block stored with
raw leaves, so small files get the same CID locally as on Pinata.
"""

from __future__ import annotations

import base64
import hashlib

_CIDV1 = 0x01
_RAW_CODEC = 0x55
_SHA2_256 = 0x12
_DIGEST_LENGTH = 32


def cid_from_digest(digest: bytes) -> str:
    """The CID for a sha2-256 digest (32 bytes) of a file's bytes."""
    if len(digest) != _DIGEST_LENGTH:
        raise ValueError("a sha2-256 digest is 32 bytes")
    binary = bytes([_CIDV1, _RAW_CODEC, _SHA2_256, _DIGEST_LENGTH]) + digest
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def cid_for_bytes(data: bytes) -> str:
    return cid_from_digest(hashlib.sha256(data).digest())


def digest_from_cid(cid: str) -> bytes:
    """The sha2-256 digest inside a CID this module made; ValueError for any other CID."""
    if not cid.startswith("b"):
        raise ValueError(f"not a base32 CIDv1: {cid!r}")
    text = cid[1:].upper()
    binary = base64.b32decode(text + "=" * (-len(text) % 8))
    if binary[:4] != bytes([_CIDV1, _RAW_CODEC, _SHA2_256, _DIGEST_LENGTH]) or len(binary) != 36:
        raise ValueError(f"not a raw sha2-256 CIDv1: {cid!r}")
    return binary[4:]
