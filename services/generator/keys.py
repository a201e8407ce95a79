"""Every Redis key the generator uses, in one place, all under one prefix (arq's `constants.py` habit)."""

from __future__ import annotations

from dataclasses import dataclass

#: The consumer group every worker process joins on the job stream.
WORKER_GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix`` (e.g. ``dreamforge:gen``); several deployments can share one Redis."""

    prefix: str = "dreamforge:gen"

    @property
    def stream(self) -> str:
        """The job stream: one entry per job waiting for (or held by) a worker."""
        return f"{self.prefix}:stream"

    @property
    def delayed(self) -> str:
        """Sorted set of job ids waiting to retry, scored by the Unix time they are due."""
        return f"{self.prefix}:delayed"

    @property
    def dead_letters(self) -> str:
        """List of job ids that FAILED, newest first (the jobs themselves stay inspectable until they expire)."""
        return f"{self.prefix}:dead"

    @property
    def sequence(self) -> str:
        """Counter: the order jobs were submitted in (the score of the listing sets)."""
        return f"{self.prefix}:seq"

    @property
    def all_jobs(self) -> str:
        """Sorted set of every job id, scored by submission order (ListJobs reads it newest first)."""
        return f"{self.prefix}:jobs"

    def job(self, job_id: str) -> str:
        """Hash: the job's record (state, stage, progress, attempts, request, result)."""
        return f"{self.prefix}:job:{job_id}"

    def by_state(self, state: str) -> str:
        """Sorted set of the job ids in one state, scored by submission order."""
        return f"{self.prefix}:state:{state}"

    def idempotency(self, key: str) -> str:
        """String: the job id an idempotency key maps to."""
        return f"{self.prefix}:idem:{key}"

    def events(self, job_id: str) -> str:
        """Stream: the job's events, in order, with ids a watcher can resume after."""
        return f"{self.prefix}:events:{job_id}"

    def checkpoint(self, job_id: str) -> str:
        """Hash: what a job has already produced (finished story text, stored assets), to resume from."""
        return f"{self.prefix}:ckpt:{job_id}"

    def heartbeat(self, host: str) -> str:
        """String with a TTL: a worker process on ``host`` is alive (read by ``--check``)."""
        return f"{self.prefix}:heartbeat:{host}"
