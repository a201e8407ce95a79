"""The generator's Prometheus metrics, in a registry of its own (one per server, so tests do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


class GeneratorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.jobs_submitted = Counter(
            "dreamforge_jobs_submitted_total",
            "Jobs accepted by SubmitJob (not counting idempotent repeats).",
            registry=registry,
        )
        self.jobs_finished = Counter(
            "dreamforge_jobs_finished_total", "Jobs that ended, by final state.", ["state"], registry=registry
        )
        self.job_retries = Counter(
            "dreamforge_job_retries_total",
            "Job attempts that failed transiently and were retried later.",
            ["code"],
            registry=registry,
        )
        self.queue_depth = Gauge("dreamforge_queue_depth", "Jobs waiting for a worker.", registry=registry)
        self.running = Gauge("dreamforge_jobs_running", "Jobs this process is working on.", registry=registry)
        self.stage_seconds = Histogram(
            "dreamforge_job_stage_seconds",
            "Time spent per pipeline stage.",
            ["stage"],
            registry=registry,
            buckets=_SECONDS,
        )
        self.job_seconds = Histogram(
            "dreamforge_job_duration_seconds",
            "Time from a worker taking a job to its end, per attempt.",
            ["outcome"],
            registry=registry,
            buckets=_SECONDS,
        )
        self.model_call_seconds = Histogram(
            "dreamforge_model_call_seconds",
            "Latency of one model call.",
            ["kind", "engine", "outcome"],
            registry=registry,
            buckets=_SECONDS,
        )
        self.model_call_retries = Counter(
            "dreamforge_model_call_retries_total",
            "Model calls retried after a transient error.",
            ["kind", "code"],
            registry=registry,
        )
