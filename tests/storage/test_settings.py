"""The storage settings: defaults that work on one machine, clear errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ConfigError, Secret
from services.storage.backends.factory import build_store
from services.storage.backends.local import LocalFileStore
from services.storage.settings import Settings
from services.storage.timestamps import format_time, parse_time

REDIS = {"REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_defaults() -> None:
    settings = Settings.from_env(REDIS)
    assert settings.storage_addr == "127.0.0.1:50051"
    assert settings.data_dir == Path("./data")
    assert settings.store_dir == Path("./data/store")
    assert settings.backend == "local"
    assert settings.max_asset_bytes == 50 * 1024 * 1024
    assert settings.metrics_addr is None
    assert (settings.log_format, settings.log_level) == ("text", "INFO")
    assert settings.index_group_name == "DREAMFORGE"
    assert settings.pinata_network == "public"
    assert settings.pinata_api_url == "https://api.pinata.cloud"
    assert settings.pinata_upload_url == "https://uploads.pinata.cloud"


def test_redis_url_is_required_and_the_message_says_make_up_provides_one() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL.*make up"):
        Settings.from_env({})


def test_auto_backend_is_pinata_when_a_jwt_is_set() -> None:
    settings = Settings.from_env({**REDIS, "PINATA_JWT": "eyJ.secret", "PINATA_GATEWAY": "x.mypinata.cloud"})
    assert settings.backend == "pinata"
    assert settings.pinata_jwt == Secret("eyJ.secret")
    assert Settings.from_env({**REDIS, "STORAGE_BACKEND": "local", "PINATA_JWT": "eyJ"}).backend == "local"


def test_the_pinata_backend_without_a_jwt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PINATA_JWT"):
        Settings.from_env({**REDIS, "STORAGE_BACKEND": "pinata"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STORAGE_ADDR", "nonsense"),
        ("STORAGE_METRICS_ADDR", "9100"),
        ("STORAGE_BACKEND", "s3"),
        ("MAX_ASSET_BYTES", "0"),
        ("MAX_ASSET_BYTES", "lots"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "chatty"),
        ("PINATA_NETWORK", "ipfs"),
    ],
)
def test_malformed_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**REDIS, name: value})


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://:hunter2@redis:6379/1",
            "STORAGE_ADDR": "0.0.0.0:6000",
            "DATA_DIR": "/srv/data",
            "STORAGE_BACKEND": "pinata",
            "PINATA_JWT": "eyJ.jwt",
            "PINATA_GATEWAY": "https://example.mypinata.cloud",
            "PINATA_GATEWAY_TOKEN": "gw-token",
            "PINATA_NETWORK": "private",
            "PINATA_API_URL": "http://127.0.0.1:9000",
            "PINATA_UPLOAD_URL": "http://127.0.0.1:9001",
            "PINATA_INDEX_GROUP_NAME": "LIBRARY",
            "MAX_ASSET_BYTES": "1000",
            "STORAGE_METRICS_ADDR": "127.0.0.1:9100",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "debug",
            "STORAGE_INDEX_COMPACT_EVERY": "10",
            "STORAGE_INDEX_LOCK_TTL_MS": "5000",
        }
    )
    assert settings == Settings(
        redis_url="redis://:hunter2@redis:6379/1",
        storage_addr="0.0.0.0:6000",
        data_dir=Path("/srv/data"),
        backend="pinata",
        max_asset_bytes=1000,
        metrics_addr="127.0.0.1:9100",
        log_format="json",
        log_level="DEBUG",
        index_group_name="LIBRARY",
        pinata_jwt=Secret("eyJ.jwt"),
        pinata_gateway="https://example.mypinata.cloud",
        pinata_gateway_token=Secret("gw-token"),
        pinata_network="private",
        pinata_api_url="http://127.0.0.1:9000",
        pinata_upload_url="http://127.0.0.1:9001",
        index_compact_every=10,
        index_lock_ttl_ms=5000,
    )


def test_the_described_configuration_hides_secrets() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://user:hunter2@redis:6379/1",
            "PINATA_JWT": "eyJ.very-secret",
            "PINATA_GATEWAY_TOKEN": "gw-secret",
            "PINATA_GATEWAY": "x.mypinata.cloud",
        }
    )
    described = settings.describe()
    text = " ".join(f"{k}={v}" for k, v in described.items())
    assert "hunter2" not in text and "very-secret" not in text and "gw-secret" not in text
    assert described["PINATA_JWT"] == "(set)"
    assert described["REDIS_URL"] == "redis://user:****@redis:6379/1"
    assert "very-secret" not in repr(settings)


def test_the_local_backend_is_built_under_the_data_dir(tmp_path: Path) -> None:
    store = build_store(Settings(redis_url="redis://x", data_dir=tmp_path))
    assert isinstance(store, LocalFileStore)
    assert store.root == tmp_path / "store"


def test_timestamps_accept_pinata_forms_on_python_3_10() -> None:
    assert format_time(parse_time("2024-08-28T20:58:46.96779Z")) == "2024-08-28T20:58:46.967790Z"
    assert format_time(parse_time("2024-08-27T14:57:51Z")) == "2024-08-27T14:57:51.000000Z"
    assert format_time(parse_time("2024-08-27T16:57:51.1+02:00")) == "2024-08-27T14:57:51.100000Z"
