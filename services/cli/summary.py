"""The resolved configuration `dreamforge up` prints: where data lives and what each service will use."""

from __future__ import annotations

from services.cli.stack_settings import StackSettings


def describe_configuration(settings: StackSettings) -> list[str]:
    redis = settings.redis_url or f"embedded (data in {settings.data_dir / 'redis'})"
    return [
        f"data dir         {settings.data_dir}",
        f"redis            {redis}",
        f"storage          {settings.storage_addr} (metrics {settings.storage_metrics_addr or 'off'})",
        f"generator        {settings.generator_addr} (metrics {settings.generator_metrics_addr or 'off'})",
        f"gateway          {settings.gateway_url} (metrics {settings.gateway_url}/metrics)",
    ]
