"""Every Redis key the storage service uses, in one place.

Redis holds coordination only (locks, the published index sequence number, draft
tokens); the store is the source of truth. Keys are scoped by the index group's
id, so stores that share one Redis never see each other's keys.
"""

from __future__ import annotations

PREFIX = "dreamforge:storage"


def index_lock(index_id: str) -> str:
    """Held while an index entry is written and published (SET NX PX, token value)."""
    return f"{PREFIX}:{index_id}:lock"


def index_seq(index_id: str) -> str:
    """The sequence number of the newest published index entry."""
    return f"{PREFIX}:{index_id}:seq"


def compaction_lock(index_id: str) -> str:
    """Held while a snapshot is written and folded files removed (one compactor at a time)."""
    return f"{PREFIX}:{index_id}:compaction"


def draft_token(index_id: str, client_token: str) -> str:
    """CreateStory's `client_token` -> the story id it made."""
    return f"{PREFIX}:{index_id}:draft:{client_token}"


def index_group_creation(group_name: str) -> str:
    """Held while the index group is looked up and, when missing, created."""
    return f"{PREFIX}:create-index-group:{group_name}"
