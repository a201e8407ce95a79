"""Protobuf messages become the JSON the API documents."""

from __future__ import annotations

from dreamforge.v1 import jobs_pb2, storage_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.gateway.convert import OFFLINE_NOTICE, event_json, job_json, story_json, summary_json, timestamp

STORY = "0193c8f2-7d1e-7c3a-9b2e-3f4a5b6c7d8e"


def test_timestamps_are_utc_with_milliseconds_and_unset_is_null() -> None:
    assert timestamp(Timestamp(seconds=1_700_000_000, nanos=123_456_789)) == "2023-11-14T22:13:20.123Z"
    assert timestamp(Timestamp()) is None


def test_a_job_has_every_documented_field() -> None:
    job = jobs_pb2.Job(
        job_id=STORY, state=jobs_pb2.JOB_STATE_FAILED, stage="writing", progress=140, attempts=2,
        error=jobs_pb2.JobError(code="content_policy", message="refused"),
    )  # fmt: skip
    body = job_json(job)
    assert body["state"] == "failed"
    assert body["progress"] == 100
    assert body["story_id"] is None
    assert body["error"] == {"code": "content_policy", "message": "refused"}
    assert {"id", "state", "stage", "progress", "story_id", "error", "attempts", "created_at", "updated_at"} <= set(
        body
    )
    assert job_json(jobs_pb2.Job(job_id=STORY, state=jobs_pb2.JOB_STATE_QUEUED))["error"] is None


def test_a_story_lists_parts_in_order_with_image_urls_and_names_its_engine() -> None:
    image = storage_pb2.AssetRef(name="image_0", cid="bafy0", content_type="image/png", size=10)
    manifest = storage_pb2.StoryManifest(
        story_id=STORY,
        title="The Bear",
        parts=[
            storage_pb2.StoryPart(index=1, title="Two", text="b"),
            storage_pb2.StoryPart(index=0, title="One", text="a", image_asset=image),
        ],
        generation=storage_pb2.GenerationInfo(text_engine="offline", image_engine="offline", offline=True),
    )
    body = story_json(manifest)
    assert [p["index"] for p in body["parts"]] == [0, 1]
    assert body["parts"][0]["image"]["url"] == f"/api/v1/stories/{STORY}/assets/image_0"
    assert body["parts"][1]["image"] is None
    assert body["engine"]["offline"] is True
    assert body["engine"]["label"] == OFFLINE_NOTICE
    assert "not an AI model" in OFFLINE_NOTICE


def test_a_summary_without_a_cover_has_a_null_cover_url() -> None:
    assert summary_json(storage_pb2.StorySummary(story_id=STORY, title="t"))["cover_url"] is None
    with_cover = storage_pb2.StorySummary(story_id=STORY, title="t", cover=storage_pb2.AssetRef(name="image_0"))
    assert summary_json(with_cover)["cover_url"] == f"/api/v1/stories/{STORY}/assets/image_0"


def test_each_event_kind_has_its_name_and_data() -> None:
    kind, data = event_json(
        jobs_pb2.JobEvent(
            event_id="1-0", text=jobs_pb2.TextDeltaEvent(field=jobs_pb2.TEXT_FIELD_PART_TEXT, delta="Once")
        )
    )
    assert (kind, data["field"], data["delta"]) == ("text", "part_text", "Once")
    kind, data = event_json(jobs_pb2.JobEvent(done=jobs_pb2.DoneEvent(story_id=STORY, title="T")))
    assert (kind, data["story_id"]) == ("done", STORY)
    kind, data = event_json(
        jobs_pb2.JobEvent(
            failed=jobs_pb2.FailedEvent(state=jobs_pb2.JOB_STATE_CANCELLED, error=jobs_pb2.JobError(code="cancelled"))
        )
    )
    assert (kind, data["state"], data["error"]["code"]) == ("failed", "cancelled", "cancelled")
