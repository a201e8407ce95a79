"""The resolved configuration `dreamforge up` prints, computed by each service's own settings.

Building the services' settings here, before anything starts, also makes a bad
setting (say `STORAGE_BACKEND=pinata` without a JWT) stop the stack at once
with the service's own message.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.cli.stack_settings import StackSettings
from services.generator.settings import Settings as GeneratorSettings
from services.storage.settings import Settings as StorageSettings

# The stack provides Redis itself; this stands in for its URL until it is known.
_REDIS_PLACEHOLDER = "redis://127.0.0.1:6379/0"


def _engine(kind: str, resolved: str, model: str, base_url: str | None) -> str:
    if resolved == "offline":
        return f"offline (built in, not an AI model: template {kind})"
    if resolved == "none":
        return "none (text-only stories)"
    where = base_url or "api.openai.com"
    return f"openai {model} at {where}"


def describe_configuration(settings: StackSettings, environ: Mapping[str, str] | None = None) -> list[str]:
    child = settings.child_environment(settings.redis_url or _REDIS_PLACEHOLDER, environ)
    storage = StorageSettings.from_env(child)
    generator = GeneratorSettings.from_env(child)
    if storage.backend == "pinata":
        backend = f"pinata ({storage.pinata_network} network, gateway {storage.pinata_gateway or '(not set)'})"
    else:
        backend = f"local ({settings.data_dir / 'store'})"
    redis = settings.redis_url or f"embedded (data in {settings.data_dir / 'redis'})"
    base_url = generator.openai_base_url
    text = _engine("stories", generator.resolved_text_engine, generator.text_model, base_url)
    image = _engine("pictures", generator.resolved_image_engine, generator.image_model, base_url)
    return [
        f"data dir       {settings.data_dir}",
        f"redis          {redis}",
        f"storage        {backend} on {settings.storage_addr}",
        f"text engine    {text}",
        f"image engine   {image}",
        f"workers        {generator.workers} in the generator on {settings.generator_addr}",
        f"metrics        {settings.gateway_url}/metrics, storage {settings.storage_metrics_addr or 'off'}, "
        f"generator {settings.generator_metrics_addr or 'off'}",
        f"secrets        OPENAI_API_KEY {_set(generator.openai_api_key)}, PINATA_JWT {_set(storage.pinata_jwt)}",
    ]


def _set(secret: object) -> str:
    return "(set)" if secret else "(not set)"
