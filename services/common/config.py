"""Reading settings from the environment: typed, with defaults, failing early with a clear message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing or malformed; raised at start-up, before anything runs."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


def mask(secret: Secret | None) -> str:
    """How a secret appears in the resolved configuration: set or not, never its value."""
    return "(set)" if secret else "(not set)"


class Env:
    """Typed access to a mapping of environment variables (``os.environ`` unless given).

    Empty values count as unset, so ``FOO=`` in a compose file means "use the default".
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"Config '{name}' is missing")
        return value

    def secret(self, name: str) -> Secret:
        return Secret(self.raw(name) or "")

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"Config '{name}' must be a whole number, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def number(self, name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"Config '{name}' must be a number, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"Config '{name}' must be true or false, got {value!r}")

    def log_format(self) -> str:
        return self.choice("LOG_FORMAT", "text", LOG_FORMATS)

    def log_level(self) -> str:
        """``LOG_LEVEL`` as the logging module spells it (``INFO``)."""
        return self.choice("LOG_LEVEL", "info", LOG_LEVELS).upper()

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            allowed = ", ".join(choices)
            raise ConfigError(f"Config '{name}' must be one of {allowed}; got {value!r}")
        return value


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def redact_url(url: str) -> str:
    """A URL fit for logs: ``redis://user:secret@host`` -> ``redis://user:****@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}://{user + ':' if user else ''}****@{host}"


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(f"Config '{name}' must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"Config '{name}' must be at most {maximum}, got {number}")


def split_host_port(name: str, address: str) -> tuple[str, int]:
    """``"127.0.0.1:50051"`` -> ``("127.0.0.1", 50051)``; a clear error for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"Config '{name}' must look like host:port, got {address!r}")
    return host.strip("[]"), int(port)
