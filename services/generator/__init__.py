"""The generator service: the JobService API, the Redis job queue, its workers and the story pipeline."""
