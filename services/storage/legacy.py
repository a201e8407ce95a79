"""The original app's data: `index.txt` lines `groupId<TAB>title`, and groups of `text_N` / `image_N` files.

We never modify or delete `index.txt`. Its stories are listed alongside ours, and a
group with part files that are not ours (they carry no keyvalues) and no manifest is
read as a legacy story: its manifest is rebuilt from the files.
"""

from __future__ import annotations

import json
import logging

from services.common.errors import NotFound
from services.common.ids import is_id
from services.storage.backends.base import FileRecord, FileStore, GroupRecord
from services.storage.files import current_by_name, is_ours, list_files, read_small
from services.storage.models import AssetRef, Manifest, Part, StoryFormat, StorySummary
from services.storage.names import MANIFEST_NAME, part_file

log = logging.getLogger(__name__)

INDEX_TXT = "index.txt"
MAX_INDEX_TXT_BYTES = 32 * 1024 * 1024
MAX_TEXT_BYTES = 4 * 1024 * 1024


def parse_index_txt(data: bytes) -> dict[str, str]:
    """Story id -> title, in file order; the first line for an id wins, malformed lines are skipped."""
    stories: dict[str, str] = {}
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip("\r\n")
        if not line.strip():
            continue
        group_id, _, title = line.partition("\t")
        group_id = group_id.strip().lower()
        if not is_id(group_id):
            log.warning("index.txt line %d does not start with a group id; skipped", number)
            continue
        stories.setdefault(group_id, title.strip())
    return stories


def is_legacy_group(files: list[FileRecord]) -> bool:
    """A group the original app wrote: part files, none of them ours, and no manifest."""
    if any(is_ours(f) or f.name == MANIFEST_NAME for f in files):
        return False
    return any(part_file(f.name) is not None for f in files)


def legacy_summary(group: GroupRecord, title: str | None, files: list[FileRecord]) -> StorySummary:
    cover = current_by_name(files).get("image_0")
    return StorySummary(
        story_id=group.id,
        title=title or group.name,
        created_at=group.created_at,
        cover=AssetRef.of(cover) if cover else None,
        format=StoryFormat.LEGACY,
    )


async def resolve_summary(store: FileStore, story_id: str, title: str) -> StorySummary | None:
    """The library row of an `index.txt` line; None when its group no longer exists."""
    try:
        group = await store.get_group(story_id)
    except NotFound:
        return None
    return legacy_summary(group, title, await list_files(store, story_id, name="image_0"))


async def rebuild_manifest(
    store: FileStore, group: GroupRecord, title: str | None, files: list[FileRecord]
) -> Manifest:
    """A manifest for a legacy group: one part per `text_N` / `image_N` number, texts read from the files."""
    current = current_by_name(files)
    numbers: dict[int, dict[str, FileRecord]] = {}
    for name, record in current.items():
        parsed = part_file(name)
        if parsed is not None:
            numbers.setdefault(parsed[1], {})[parsed[0]] = record
    parts = []
    for number in sorted(numbers):
        found = numbers[number]
        text_file = found.get("text")
        image_file = found.get("image")
        text = _legacy_text(await read_small(store, text_file, limit=MAX_TEXT_BYTES)) if text_file else ""
        parts.append(
            Part(
                index=number,
                text=text,
                text_asset=AssetRef.of(text_file) if text_file else None,
                image_asset=AssetRef.of(image_file) if image_file else None,
            )
        )
    return Manifest(
        story_id=group.id,
        title=title or group.name,
        created_at=group.created_at,
        format=StoryFormat.LEGACY,
        parts=tuple(parts),
    )


def _legacy_text(data: bytes) -> str:
    """Plain text; a JSON object with a "content" or "text" string is unwrapped (both forms are plausible)."""
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return text
        if isinstance(document, dict):
            for key in ("content", "text"):
                if isinstance(document.get(key), str):
                    return str(document[key])
    return text
