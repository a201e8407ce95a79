"""Building the configured backend: `local` (a directory under DATA_DIR) or `pinata` (imported only when chosen)."""

from __future__ import annotations

import importlib

from services.common.config import ConfigError
from services.storage.backends.base import FileStore
from services.storage.backends.local import LocalFileStore
from services.storage.settings import Settings


def build_store(settings: Settings) -> FileStore:
    if settings.backend == "local":
        return LocalFileStore(settings.store_dir)
    if settings.backend == "pinata":
        # Imported lazily: the local backend must work without the Pinata client (and before it existed).
        pinata = importlib.import_module("services.storage.backends.pinata")
        config = pinata.PinataConfig(
            pinata_jwt=settings.pinata_jwt,
            pinata_gateway=settings.pinata_gateway,
            pinata_gateway_token=settings.pinata_gateway_token,
            pinata_network=settings.pinata_network,
            pinata_api_url=settings.pinata_api_url,
            pinata_upload_url=settings.pinata_upload_url,
        )
        store: FileStore = pinata.PinataFileStore.from_config(config)
        return store
    raise ConfigError(f"Config 'STORAGE_BACKEND' must be local or pinata, got {settings.backend!r}")
